"""Registry resources: the validated draft a provider submits, the stored row, and the bazaar discovery item."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from x402.errors import BadRequest
from x402.wire import resource_meta
from x402.wire.models import DiscoveryItem, PaymentRequirements, PaymentRequirementsV1, is_canonical_uint
from x402.wire.networks import to_caip2, to_v1_name

MAX_URL: Final = 2048
MAX_TEXT: Final = 2000
MAX_SERVICE_NAME: Final = 32  # architecture.md §2.2: ResourceInfo.serviceName <= 32 chars
MAX_TAGS: Final = 5
MAX_TAG: Final = 32
MAX_ACCEPTS: Final = 20
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
TYPES: Final = frozenset({"http", "mcp"})
_CATEGORY: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def _bad(code: str, detail: str) -> BadRequest:
    return BadRequest(detail, code=code)


def check_http_url(value: object, code: str = "invalid_url", what: str = "url") -> str:
    """An absolute http(s) URL with a valid host (IDNA labels or an IP literal) and port, at most 2048 characters."""
    from yarl import URL

    from x402.service.registry.hosts import has_bad_chars, host_problem

    if not isinstance(value, str) or not value or len(value) > MAX_URL:
        raise _bad(code, f"{what} must be an absolute http(s) URL of at most {MAX_URL} characters")
    if has_bad_chars(value):
        raise _bad(code, f"{what} must not contain spaces or control characters: {value!r}")
    try:
        parsed = URL(value)
        port = parsed.explicit_port
        raw_host = parsed.raw_host
    except (ValueError, TypeError, UnicodeError):
        raise _bad(code, f"{what} is not a URL: {value!r}") from None
    if parsed.scheme not in ("http", "https") or not raw_host or parsed.raw_user or parsed.raw_password:
        raise _bad(code, f"{what} must be an absolute http(s) URL without credentials: {value!r}")
    problem = host_problem(raw_host)
    if problem is not None:
        raise _bad(code, f"{what}: {problem}")
    if port is not None and not 1 <= port <= 65535:
        raise _bad(code, f"{what}: the port must be 1-65535")
    return value


def is_atomic(amount: object) -> bool:
    """True for an atomic-unit amount: a string of ASCII digits below 2**256."""
    return is_canonical_uint(amount) and int(str(amount)) < 2**256


def check_accepts(raw: object, x402_version: int) -> list[dict[str, Any]]:
    """Validate ``accepts`` of an x402 version: non-empty, wire-shaped, amounts atomic integer strings."""
    if not isinstance(raw, list) or not raw:
        raise _bad("invalid_accepts", "accepts must be a non-empty list of payment requirements")
    if len(raw) > MAX_ACCEPTS:
        raise _bad("invalid_accepts", f"at most {MAX_ACCEPTS} accepts entries")
    out: list[dict[str, Any]] = []
    for i, entry in enumerate(raw):
        amount_key = "amount" if x402_version == 2 else "maxAmountRequired"
        amount = entry.get(amount_key) if isinstance(entry, dict) else None
        if isinstance(entry, dict) and amount is not None and not is_atomic(amount):
            raise _bad(
                "invalid_accepts",
                f'accepts[{i}].{amount_key} must be an atomic integer string (e.g. "10000"), got {amount!r}',
            )
        try:
            if x402_version == 2:
                req: Any = msgspec.convert(entry, PaymentRequirements)
                to_caip2(req.network)
            else:
                req = msgspec.convert(entry, PaymentRequirementsV1)
                to_caip2(req.network)
        except msgspec.ValidationError as exc:
            raise _bad("invalid_accepts", f"accepts[{i}]: {exc}") from None
        except BadRequest as exc:
            raise _bad("invalid_accepts", f"accepts[{i}]: {exc.detail}") from None
        out.append(msgspec.to_builtins(req))
    return out


@dataclass(frozen=True, slots=True)
class AcceptsSummary:
    """Filter columns derived from ``accepts``."""

    pay_to: list[str]
    networks: list[str]
    schemes: list[str]
    min_price: int | None


def summarize(accepts: Sequence[Mapping[str, Any]], x402_version: int) -> AcceptsSummary:
    """payTos, networks (CAIP-2 plus v1 names), schemes and the cheapest atomic amount of ``accepts``."""
    pay_to: list[str] = []
    networks: list[str] = []
    schemes: list[str] = []
    amounts: list[int] = []
    for a in accepts:
        for bucket, value in ((pay_to, a.get("payTo")), (schemes, a.get("scheme"))):
            if isinstance(value, str) and value not in bucket:
                bucket.append(value)
        net = a.get("network")
        if isinstance(net, str):
            # both spellings, so a filter by CAIP-2 id or by v1 name finds v1 and v2 listings alike
            for name in (net, _caip2(net), to_v1_name(_caip2(net))):
                if name and name not in networks:
                    networks.append(name)
        amount = a.get("amount" if x402_version == 2 else "maxAmountRequired")
        if is_atomic(amount):
            amounts.append(int(str(amount)))
    return AcceptsSummary(pay_to, networks, schemes, min(amounts) if amounts else None)


def _caip2(network: str) -> str:
    try:
        return to_caip2(network)
    except BadRequest:
        return network


@dataclass(slots=True)
class ResourceDraft:
    """What a provider (API, crawl, paywall or bazaar payment) says about one paid resource."""

    url: str
    accepts: list[dict[str, Any]]
    method: str = "GET"
    type: str = "http"
    tool: str = ""
    x402_version: int = 2
    description: str = ""
    mime_type: str = ""
    service_name: str = ""
    tags: list[str] = field(default_factory=list)
    icon_url: str | None = None
    category: str | None = None
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    extensions: dict[str, Any] | None = None


def _opt_str(doc: Mapping[str, Any], key: str, code: str, limit: int = MAX_TEXT) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise _bad(code, f"{key} must be a string of at most {limit} characters")
    return value


def _opt_obj(doc: Mapping[str, Any], key: str, code: str) -> dict[str, Any] | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad(code, f"{key} must be a JSON object")
    return value


def check_tags(value: object) -> list[str]:
    """At most 5 non-empty tags of at most 32 characters (architecture.md §2.2)."""
    if not isinstance(value, list) or len(value) > MAX_TAGS:
        raise _bad("invalid_tags", f"tags must be a list of at most {MAX_TAGS} strings")
    if not all(isinstance(t, str) and 0 < len(t) <= MAX_TAG for t in value):
        raise _bad("invalid_tags", f"each tag must be a non-empty string of at most {MAX_TAG} characters")
    return list(dict.fromkeys(value))


def mcp_tool_name(inp: Mapping[str, Any] | None) -> object:
    """The MCP tool name of a bazaar ``info.input``: ``toolName`` (x402-spec §12.1), or the older ``tool``."""
    if not inp:
        return ""
    return inp.get("toolName", inp.get("tool", ""))


def bazaar_io(extensions: Mapping[str, Any] | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """``info.input`` and ``info.output`` of a bazaar extension, when present and objects."""
    bazaar = (extensions or {}).get("bazaar")
    info = bazaar.get("info") if isinstance(bazaar, dict) else None
    if not isinstance(info, dict):
        return None, None
    inp, out = info.get("input"), info.get("output")
    return (inp if isinstance(inp, dict) else None), (out if isinstance(out, dict) else None)


def draft_from_json(doc: object) -> ResourceDraft:
    """Validate a ``POST /v1/resources`` body (camelCase); raises BadRequest with a specific code."""
    if not isinstance(doc, dict):
        raise _bad("invalid_body", "expected a JSON object")
    url = check_http_url(doc.get("url", doc.get("resource")))
    version = doc.get("x402Version", 2)
    if version not in (1, 2) or isinstance(version, bool):
        raise _bad("invalid_x402_version", "x402Version must be 1 or 2")
    accepts = check_accepts(doc.get("accepts"), version)
    extensions = _opt_obj(doc, "extensions", "invalid_extensions")
    b_in, b_out = bazaar_io(extensions)
    input_schema = _opt_obj(doc, "inputSchema", "invalid_input_schema") or b_in
    output_schema = _opt_obj(doc, "outputSchema", "invalid_output_schema") or b_out
    rtype = doc.get("type") or ("mcp" if (input_schema or {}).get("type") == "mcp" else "http")
    if rtype not in TYPES:
        raise _bad("invalid_type", "type must be http or mcp")
    default_method = (input_schema or {}).get("method", "POST" if rtype == "mcp" else "GET")
    method = doc.get("method", default_method)
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise _bad("invalid_method", f"method must be one of {sorted(METHODS)}")
    tool = doc.get("toolName", doc.get("tool", mcp_tool_name(input_schema) if rtype == "mcp" else ""))
    if not isinstance(tool, str) or len(tool) > 128 or (rtype == "mcp" and not tool):
        raise _bad("invalid_tool", "an mcp resource needs its tool name (toolName or inputSchema.toolName)")
    service_name = _opt_str(doc, "serviceName", "invalid_service_name", MAX_SERVICE_NAME) or ""
    if service_name and resource_meta.service_name(service_name) is None:
        raise _bad("invalid_service_name", "serviceName must be 1-32 printable ASCII characters")
    icon = doc.get("iconUrl")
    if icon is not None and resource_meta.icon_url(icon) is None:
        raise _bad("invalid_icon_url", "iconUrl must be an http(s) URL without an IP literal, localhost or user info")
    category = doc.get("category")
    if category is not None and (not isinstance(category, str) or not _CATEGORY.fullmatch(category)):
        raise _bad("invalid_category", "category must be a lowercase slug (a-z, 0-9, _ and -, at most 64)")
    return ResourceDraft(
        url=url,
        accepts=accepts,
        method=method.upper(),
        type=rtype,
        tool=tool if rtype == "mcp" else "",
        x402_version=version,
        description=_opt_str(doc, "description", "invalid_description") or "",
        mime_type=_opt_str(doc, "mimeType", "invalid_mime_type", 255) or "",
        service_name=service_name,
        tags=check_tags(doc.get("tags", [])),
        icon_url=None if icon is None else check_http_url(icon, "invalid_icon_url", "iconUrl"),
        category=category,
        input_schema=input_schema,
        output_schema=output_schema,
        extensions=extensions,
    )


#: Fields ``PATCH /v1/resources/{id}`` may change (the catalogue key url/method/tool may not).
PATCHABLE: Final = frozenset(
    {
        "accepts",
        "x402Version",
        "description",
        "mimeType",
        "serviceName",
        "tags",
        "iconUrl",
        "category",
        "inputSchema",
        "outputSchema",
        "extensions",
    }
)


@dataclass(frozen=True, slots=True)
class Resource:
    """A stored registry row."""

    id: uuid.UUID
    tenant_id: uuid.UUID | None
    url: str
    method: str
    tool: str
    type: str
    x402_version: int
    accepts: list[dict[str, Any]]
    extensions: dict[str, Any] | None
    description: str
    mime_type: str
    service_name: str
    tags: list[str]
    icon_url: str | None
    category: str | None
    input_schema: dict[str, Any] | None
    output_schema: dict[str, Any] | None
    pay_to: list[str]
    networks: list[str]
    schemes: list[str]
    min_price: int | None
    source: str
    local: bool
    verification_status: str
    verification_reason: str | None
    evidence: dict[str, Any] | None
    probes_ok: int
    probes_total: int
    uptime: float | None
    rating_sum: int
    rating_count: int
    settled_count: int
    settled_volume: int
    status: str
    down_reason: str | None
    last_probe_at: datetime | None
    last_updated: datetime
    created_at: datetime
    score: float | None = None

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> Resource:
        """Build from an asyncpg record of ``store.COLUMNS`` (plus an optional ``score``)."""
        values = {f.name: rec[f.name] for f in fields(cls) if f.name in rec}
        values["tags"] = list(values["tags"])
        values["pay_to"] = list(values["pay_to"])
        values["networks"] = list(values["networks"])
        values["schemes"] = list(values["schemes"])
        values["min_price"] = None if values["min_price"] is None else int(values["min_price"])
        values["settled_volume"] = int(values["settled_volume"])
        return cls(**values)

    def to_draft(self) -> ResourceDraft:
        """The provider-declared part of this row."""
        return ResourceDraft(
            url=self.url,
            accepts=self.accepts,
            method=self.method,
            type=self.type,
            tool=self.tool,
            x402_version=self.x402_version,
            description=self.description,
            mime_type=self.mime_type,
            service_name=self.service_name,
            tags=list(self.tags),
            icon_url=self.icon_url,
            category=self.category,
            input_schema=self.input_schema,
            output_schema=self.output_schema,
            extensions=self.extensions,
        )

    def to_json(self, *, owner: bool = False) -> dict[str, Any]:
        """The full registry view (``GET /v1/resources/{id}``); ``tenantId`` only for its owner (or the operator)."""
        body: dict[str, Any] = {
            "id": str(self.id),
            "resource": self.url,
            "method": self.method,
            "type": self.type,
            "x402Version": self.x402_version,
            "accepts": self.accepts,
            "description": self.description,
            "mimeType": self.mime_type,
            "serviceName": self.service_name,
            "tags": self.tags,
            "iconUrl": self.icon_url,
            "category": self.category,
            "inputSchema": self.input_schema,
            "outputSchema": self.output_schema,
            "extensions": self.extensions,
            "payTo": self.pay_to,
            "networks": self.networks,
            "schemes": self.schemes,
            "minPrice": None if self.min_price is None else str(self.min_price),
            "source": self.source,
            "local": self.local,
            "lastUpdated": iso(self.last_updated),
            "createdAt": iso(self.created_at),
            **self.quality_json(),
        }
        if self.tool:
            body["toolName"] = self.tool
        if owner:
            body["tenantId"] = None if self.tenant_id is None else str(self.tenant_id)
        return body

    def quality_json(self) -> dict[str, Any]:
        """Verification, liveness and popularity signals."""
        return {
            "verification": {
                "status": self.verification_status,
                "reason": self.verification_reason,
                "evidence": self.evidence,
            },
            "status": self.status,
            "downReason": self.down_reason,
            "uptime": self.uptime,
            "probes": {"ok": self.probes_ok, "total": self.probes_total},
            "lastProbeAt": None if self.last_probe_at is None else iso(self.last_probe_at),
            "rating": {
                "average": round(self.rating_sum / self.rating_count, 2) if self.rating_count else None,
                "count": self.rating_count,
            },
            "settled": {"count": self.settled_count, "volume": str(self.settled_volume)},
        }

    def to_item(self) -> DiscoveryItem:
        """The bazaar discovery item (architecture.md §7.2); registry signals go under ``metadata``."""
        item = DiscoveryItem(
            resource=self.url,
            type=self.type,
            x402_version=self.x402_version,
            accepts=self.accepts,
            last_updated=iso(self.last_updated),
        )
        for attr, value in (
            ("description", self.description),
            ("mime_type", self.mime_type),
            ("service_name", self.service_name),
            ("icon_url", self.icon_url),
        ):
            if value:
                setattr(item, attr, value)
        if self.tags:
            item.tags = list(self.tags)
        ext = self.extensions
        if not ext and self.input_schema:
            info: dict[str, Any] = {"input": self.input_schema}
            if self.output_schema:
                info["output"] = self.output_schema
            ext = {"bazaar": {"info": info}}
        if ext:
            item.extensions = ext
        meta: dict[str, Any] = {
            "id": str(self.id),
            "method": self.method,
            "verification": self.verification_status,
            "status": self.status,
            "uptime": self.uptime,
            "rating": round(self.rating_sum / self.rating_count, 2) if self.rating_count else None,
            "ratingCount": self.rating_count,
            "settledCount": self.settled_count,
        }
        if self.category:
            meta["category"] = self.category
        if self.min_price is not None:
            meta["minPrice"] = str(self.min_price)
        if self.tool:
            meta["toolName"] = self.tool
        if self.score is not None:
            meta["score"] = round(self.score, 4)
        item.metadata = meta
        return item


def iso(ts: datetime) -> str:
    """ISO-8601 UTC with a ``Z`` (the 2.x SDK type of ``lastUpdated``)."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
