"""Import an origin: read ``/.well-known/x402`` and ``/openapi.json``, probe every paid resource, check ownership.

Runtime 402 behaviour is authoritative over static metadata (x402scan): what gets stored is what the probe saw.
A resource is ``verified`` when its probe passes and an ownership proof signed by one of its payTos covers the
origin; ``failed`` with the probe's reason or ``invalid_ownership_proof``; ``unverified`` (``no_ownership_proof``)
when it probes fine but the origin publishes no proof.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

from yarl import URL

from x402.errors import BadRequest
from x402.service.registry.models import (
    METHODS,
    ResourceDraft,
    bazaar_io,
    check_http_url,
    mcp_tool_name,
    summarize,
)
from x402.service.registry.outbound import Outbound, OutboundFailed
from x402.service.registry.probe import ProbeResult, probe
from x402.service.registry.proofs import proven_pay_tos
from x402.service.registry.store import RegistryStore, Verification
from x402.wire import jsonlimits, resource_meta

MAX_ENTRIES: Final = 100
PROBE_CONCURRENCY: Final = 8
_HTTP_METHODS: Final = ("get", "post", "put", "patch", "delete", "head")


@dataclass(frozen=True, slots=True)
class Entry:
    """One resource an origin lists; ``method`` None when the listing does not say."""

    url: str
    method: str | None
    description: str = ""


@dataclass(slots=True)
class Discovered:
    """What an origin's documents list."""

    entries: list[Entry] = field(default_factory=list)
    proofs: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    sources: dict[str, bool] = field(default_factory=dict)


def normalize_origin(raw: object) -> str:
    """``scheme://host[:port]`` of an http(s) URL; raises ``invalid_url``."""
    url = URL(check_http_url(raw, what="origin"))
    return str(url.origin())


def _entry(raw: str, origin: URL) -> Entry | str:
    """Parse a well-known entry (``url``, ``/path``, ``METHOD url-or-path``); a string says why it was skipped."""
    method: str | None = None
    text = raw.strip()
    head, _, rest = text.partition(" ")
    if rest and head.upper() in METHODS:
        method, text = head.upper(), rest.strip()
    target = origin.join(URL(text)) if text.startswith("/") else URL(text)
    if not target.absolute or target.scheme not in ("http", "https"):
        return "invalid_entry"
    if target.origin() != origin:
        return "cross_origin"
    return Entry(str(target), method)


def parse_well_known(doc: Any, origin: URL, out: Discovered) -> None:
    """Add the entries and proofs of an x402scan ``/.well-known/x402`` document."""
    if not isinstance(doc, dict) or not isinstance(doc.get("resources"), list):
        out.skipped.append({"entry": "/.well-known/x402", "reason": "invalid_document"})
        return
    for raw in doc["resources"]:
        parsed = _entry(raw, origin) if isinstance(raw, str) else "invalid_entry"
        if isinstance(parsed, str):
            out.skipped.append({"entry": str(raw)[:200], "reason": parsed})
        else:
            out.entries.append(parsed)
    proofs = doc.get("ownershipProofs")
    if isinstance(proofs, list):
        out.proofs.extend(p for p in proofs if isinstance(p, str))


def parse_openapi(doc: Any, origin: URL, out: Discovered) -> None:
    """Add the paid operations (``x-payment-info`` or a ``402`` response) and ``x-discovery.ownershipProofs``."""
    if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
        out.skipped.append({"entry": "/openapi.json", "reason": "invalid_document"})
        return
    base = origin
    servers = doc.get("servers")
    if (
        isinstance(servers, list)
        and servers
        and isinstance(servers[0], dict)
        and isinstance(servers[0].get("url"), str)
    ):
        server = URL(servers[0]["url"])
        base = origin.join(server) if not server.absolute else server
    prefix = base.path.rstrip("/") if base.origin() == origin else None
    if prefix is None:
        out.skipped.append({"entry": "/openapi.json servers", "reason": "cross_origin"})
        return
    for path, item in doc["paths"].items():
        if not isinstance(path, str) or not path.startswith("/") or not isinstance(item, dict):
            continue
        for verb in _HTTP_METHODS:
            op = item.get(verb)
            if not isinstance(op, dict):
                continue
            responses = op.get("responses")
            paid = "x-payment-info" in op or (isinstance(responses, dict) and "402" in responses)
            if paid:
                desc = op.get("summary") or op.get("description") or ""
                url = str(origin.join(URL(prefix + path)))
                out.entries.append(Entry(url, verb.upper(), desc if isinstance(desc, str) else ""))
    discovery = doc.get("x-discovery")
    if isinstance(discovery, dict) and isinstance(discovery.get("ownershipProofs"), list):
        out.proofs.extend(p for p in discovery["ownershipProofs"] if isinstance(p, str))


async def _document(outbound: Outbound, url: str) -> Any:
    try:
        fetched = await outbound.request("GET", url, headers={"Accept": "application/json"})
    except OutboundFailed as exc:
        if exc.reason == "unreachable":
            raise
        return None
    if fetched.status != 200:
        return None
    try:
        return jsonlimits.loads(fetched.body)
    except BadRequest:
        return None  # not JSON, or nested too deep to be a manifest: nothing to list


async def discover(outbound: Outbound, origin: str) -> Discovered:
    """Fetch and parse both discovery documents of ``origin``; raises OutboundFailed when it is unreachable."""
    base = URL(origin)
    out = Discovered()
    well_known, openapi = await asyncio.gather(
        _document(outbound, f"{origin}/.well-known/x402"),
        _document(outbound, f"{origin}/openapi.json"),
    )
    out.sources = {"wellKnown": well_known is not None, "openapi": openapi is not None}
    # OpenAPI first (x402scan precedence), so its method and summary win for a resource listed twice
    if openapi is not None:
        parse_openapi(openapi, base, out)
    if well_known is not None:
        parse_well_known(well_known, base, out)
    seen: dict[tuple[str, str | None], Entry] = {}
    for e in out.entries:
        if (e.url, e.method) in seen or (e.method is None and any(u == e.url for u, _ in seen)):
            continue
        seen.pop((e.url, None), None)  # a listing with a method replaces one without
        seen[(e.url, e.method)] = e
    out.entries = list(seen.values())[:MAX_ENTRIES]
    return out


async def probe_entry(outbound: Outbound, entry: Entry) -> ProbeResult:
    """Probe with the listed method; an unlisted method is tried as GET, then POST (x402scan's default)."""
    result = await probe(outbound, entry.url, entry.method or "GET")
    if entry.method is None and result.http_status in (404, 405):
        result = await probe(outbound, entry.url, "POST")
    return result


def draft_from_probe(result: ProbeResult, fallback_description: str = "") -> ResourceDraft:
    """The resource as its 402 describes it."""
    info = result.resource
    b_in, b_out = bazaar_io(result.extensions)
    rtype = "mcp" if (b_in or {}).get("type") == "mcp" else "http"
    version = result.x402_version or 2
    if version == 1 and b_in is None:
        schema = result.accepts[0].get("outputSchema") if result.accepts else None
        if isinstance(schema, dict):
            b_in = schema.get("input") if isinstance(schema.get("input"), dict) else None
            b_out = schema.get("output") if isinstance(schema.get("output"), dict) else None

    def text(key: str, limit: int) -> str:
        value = info.get(key)
        return value[:limit] if isinstance(value, str) else ""

    return ResourceDraft(
        url=result.url,
        accepts=result.accepts,
        method=result.method,
        type=rtype,
        tool=str(mcp_tool_name(b_in)) if rtype == "mcp" else "",
        x402_version=version,
        description=text("description", 2000) or fallback_description[:2000],
        mime_type=text("mimeType", 255),
        service_name=resource_meta.service_name(info.get("serviceName")) or "",
        tags=resource_meta.tags(info.get("tags")),
        icon_url=resource_meta.icon_url(info.get("iconUrl")),
        input_schema=b_in,
        output_schema=b_out,
        extensions={"bazaar": result.extensions["bazaar"]} if "bazaar" in result.extensions else None,
    )


def judge(result: ProbeResult, origin: str, proofs: list[str]) -> Verification:
    """Verified, failed or unverified, with evidence, for one probed resource."""
    evidence: dict[str, Any] = {"probe": result.evidence(), "origin": origin}
    if not result.ok:
        return Verification("failed", result.reason, evidence)
    pay_tos = summarize(result.accepts, result.x402_version or 2).pay_to
    if not proofs:
        return Verification("unverified", "no_ownership_proof", evidence)
    proven = proven_pay_tos(proofs, origin, pay_tos)
    if not proven:
        evidence["ownership"] = {"proofs": len(proofs), "payTo": pay_tos, "valid": False}
        return Verification("failed", "invalid_ownership_proof", evidence)
    evidence["ownership"] = {"proofs": len(proofs), "proven": proven, "valid": True}
    return Verification("verified", None, evidence)


async def import_origin(
    store: RegistryStore, outbound: Outbound, raw_origin: object, *, tenant_id: uuid.UUID | None
) -> dict[str, Any]:
    """Crawl, probe and verify an origin's resources; returns the import report (``POST /v1/resources/import``)."""
    origin = normalize_origin(raw_origin)
    outbound.check_url(origin)
    try:
        found = await discover(outbound, origin)
    except OutboundFailed as exc:
        raise OutboundFailed(f"cannot reach {origin}: {exc.detail}", reason="unreachable") from None
    if not found.sources.get("wellKnown") and not found.sources.get("openapi"):
        raise BadRequest(
            f"{origin} serves neither /.well-known/x402 nor /openapi.json as JSON", code="no_discovery_document"
        )
    gate = asyncio.Semaphore(PROBE_CONCURRENCY)

    async def one(entry: Entry) -> dict[str, Any]:
        async with gate:
            result = await probe_entry(outbound, entry)
        verdict = judge(result, origin, found.proofs)
        report: dict[str, Any] = {
            "resource": entry.url,
            "method": result.method,
            "verificationStatus": verdict.status,
            "verificationReason": verdict.reason,
            "status": "up" if result.up else "down",
            "evidence": verdict.evidence,
        }
        stored = None
        if result.accepts and result.reason not in ("decimal_amount", "invalid_402", "empty_accepts"):
            stored = await store.upsert(
                draft_from_probe(result, entry.description), tenant_id=tenant_id, source="crawl", verification=verdict
            )
            if stored is None:
                report["skipped"] = "owned_by_another_tenant"
        else:
            existing = await store.find(entry.url, result.method)
            if existing is not None and (existing.tenant_id is None or existing.tenant_id == tenant_id):
                await store.set_verification(existing.id, verdict)
                stored = existing
        if stored is not None:
            await store.record_probe(stored.id, result.up, result.reason)
            report["id"] = str(stored.id)
        return report

    results = await asyncio.gather(*(one(e) for e in found.entries))
    return {
        "origin": origin,
        "sources": found.sources,
        "ownershipProofs": len(found.proofs),
        "resources": list(results),
        "skipped": found.skipped,
        "imported": sum(1 for r in results if "id" in r),
        "verified": sum(1 for r in results if r["verificationStatus"] == "verified"),
    }
