"""The bazaar extension on the facilitator side (architecture.md §7.1): catalogue resources from paid verify/settle.

Only payments that verify (or settle) are catalogued, so nobody can fill the catalogue by posting junk to
``/verify``. The facilitator answers at once (``EXTENSION-RESPONSES``: ``success`` = accepted for cataloguing,
``rejected`` + reason otherwise); the database write happens on a small queue drained by one task, so cataloguing
never slows ``/verify``. A settled payment also counts towards the resource's popularity, bazaar or not.
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from yarl import URL

from x402.logs import get_logger
from x402.service.registry.models import METHODS, ResourceDraft, check_http_url, mcp_tool_name
from x402.service.registry.store import RegistryStore
from x402.wire import resource_meta
from x402.wire.models import PaymentPayload, PaymentRequirements, resource_url

log = get_logger("x402.service.registry.bazaar")

KEY: Final = "bazaar"
QUEUE_SIZE: Final = 1000
_ROUTE_TEMPLATE: Final = re.compile(r"^/[a-zA-Z0-9_/:.\-~%]+$")
_BODY_TYPES: Final = frozenset({"json", "form-data", "text"})


class BazaarRejected(Exception):
    """A bazaar declaration the catalogue cannot take; ``reason`` goes into ``rejectedReason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CatalogEvent:
    """One queued catalogue write."""

    draft: ResourceDraft | None
    url: str
    settled_amount: int | None


def _route_template(value: object) -> str:
    if not isinstance(value, str) or not _ROUTE_TEMPLATE.fullmatch(value):
        raise BazaarRejected("invalid_route_template")
    decoded = urllib.parse.unquote(value)
    if ".." in decoded or "://" in decoded:
        raise BazaarRejected("invalid_route_template")
    return value


def validate_info(ext: object) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
    """``(input, output, routeTemplate)`` of a bazaar extension; raises BazaarRejected with the reason.

    A structural check of what the spec's JSON Schema requires of ``info`` (input discriminated by type).
    """
    if not isinstance(ext, dict) or not isinstance(ext.get("info"), dict):
        raise BazaarRejected("missing_info")
    info = ext["info"]
    inp = info.get("input")
    if not isinstance(inp, dict):
        raise BazaarRejected("missing_input")
    if "schema" in ext and not isinstance(ext["schema"], dict):
        raise BazaarRejected("invalid_schema")
    kind = inp.get("type")
    if kind == "http":
        method = inp.get("method", "GET")
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise BazaarRejected("invalid_input_method")
        if method.upper() in ("POST", "PUT", "PATCH") and inp.get("bodyType", "json") not in _BODY_TYPES:
            raise BazaarRejected("invalid_body_type")
    elif kind == "mcp":
        tool = mcp_tool_name(inp)
        if not isinstance(tool, str) or not tool or len(tool) > 128:
            raise BazaarRejected("invalid_mcp_tool")
        if not isinstance(inp.get("inputSchema"), dict):
            raise BazaarRejected("invalid_mcp_input_schema")
    else:
        raise BazaarRejected("invalid_input_type")
    out = info.get("output")
    if out is not None and not isinstance(out, dict):
        raise BazaarRejected("invalid_output")
    template = _route_template(ext["routeTemplate"]) if "routeTemplate" in ext else None
    return inp, out, template


def draft_from_payment(payload: PaymentPayload, requirements: PaymentRequirements) -> ResourceDraft:
    """The catalogue entry a paid bazaar payload describes; raises BazaarRejected."""
    if not isinstance(payload.resource, msgspec.Struct):
        raise BazaarRejected("missing_resource")
    resource = payload.resource
    try:
        url = check_http_url(resource.url)
    except Exception:
        raise BazaarRejected("invalid_resource_url") from None
    exts = payload.extensions if isinstance(payload.extensions, dict) else {}
    inp, out, template = validate_info(exts.get(KEY))
    if template is not None:
        # consolidate a parameterised route into one listing (catalogue key = origin + template)
        url = str(URL(url).origin()) + template
    mcp = inp["type"] == "mcp"
    info = msgspec.to_builtins(resource)
    return ResourceDraft(
        url=url,
        accepts=[msgspec.to_builtins(requirements)],
        method="POST" if mcp else str(inp.get("method", "GET")).upper(),
        type="mcp" if mcp else "http",
        tool=str(mcp_tool_name(inp)) if mcp else "",
        x402_version=2,
        description=str(info.get("description", ""))[:2000],
        mime_type=str(info.get("mimeType", ""))[:255],
        service_name=resource_meta.service_name(info.get("serviceName")) or "",
        tags=resource_meta.tags(info.get("tags")),
        icon_url=resource_meta.icon_url(info.get("iconUrl")),
        input_schema=inp,
        output_schema=out,
        extensions={KEY: exts[KEY]},
    )


def _merge_accepts(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Union by (scheme, network, asset, payTo): each payment shows one accept, a resource may offer several."""

    def key(a: dict[str, Any]) -> tuple[Any, ...]:
        return (a.get("scheme"), a.get("network"), a.get("asset"), a.get("payTo"))

    merged = {key(a): a for a in old}
    merged.update({key(a): a for a in new})
    return list(merged.values())[:20]


class BazaarCatalog:
    """The facilitator's bazaar extension handler (``FacilitatorService(extension_handlers=[...])``)."""

    key = KEY

    def __init__(self, maxsize: int = QUEUE_SIZE) -> None:
        self.queue: asyncio.Queue[CatalogEvent] = asyncio.Queue(maxsize)
        self._store: RegistryStore | None = None
        self._task: asyncio.Task[None] | None = None

    def handle(
        self, op: str, payload: PaymentPayload, requirements: PaymentRequirements, ok: bool, amount: int | None
    ) -> dict[str, Any] | None:
        """Queue the catalogue write for a verify/settle outcome; returns the ``bazaar`` EXTENSION-RESPONSES entry."""
        exts = payload.extensions if isinstance(payload.extensions, dict) else {}
        declared = KEY in exts
        url = resource_url(payload, requirements)
        settled = amount if (op == "settle" and ok) else None
        if not declared:
            if settled is not None and url:
                self._offer(CatalogEvent(None, url, settled))
            return None
        if not ok:
            return {"status": "rejected", "rejectedReason": "payment_not_valid"}
        try:
            draft = draft_from_payment(payload, requirements)
        except BazaarRejected as exc:
            return {"status": "rejected", "rejectedReason": exc.reason}
        if not self._offer(CatalogEvent(draft, url, settled)):
            return {"status": "rejected", "rejectedReason": "catalog_busy"}
        return {"status": "success"}

    def _offer(self, event: CatalogEvent) -> bool:
        if self._store is None:
            return False
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("bazaar_queue_full", url=event.url)
            return False
        return True

    async def start(self, store: RegistryStore) -> None:
        """Begin draining the queue into ``store``."""
        self._store = store
        self._task = asyncio.create_task(self._run(store))

    async def stop(self) -> None:
        """Finish what is queued (briefly), then stop."""
        self._store = None
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self.queue.join(), timeout=5.0)
        except TimeoutError:
            log.warning("bazaar_queue_dropped", pending=self.queue.qsize())
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None

    async def drain(self) -> None:
        """Wait until every queued event is written (tests, shutdown)."""
        await self.queue.join()

    async def _run(self, store: RegistryStore) -> None:
        while True:
            event = await self.queue.get()
            try:
                await self._apply(store, event)
            except Exception as exc:  # one bad event must not stop the catalogue
                log.warning("bazaar_catalog_failed", url=event.url, error=type(exc).__name__, detail=str(exc)[:200])
            finally:
                self.queue.task_done()

    async def _apply(self, store: RegistryStore, event: CatalogEvent) -> None:
        draft = event.draft
        if draft is not None:
            existing = await store.find(draft.url, draft.method, draft.tool)
            if existing is not None and existing.x402_version == 2:
                draft.accepts = _merge_accepts(existing.accepts, draft.accepts)
            saved = await store.upsert(draft, tenant_id=None, source="bazaar")
            log.info("bazaar_catalogued", url=draft.url, method=draft.method, stored=saved is not None)
        if event.settled_amount is not None:
            await store.record_settlement(draft.url if draft else event.url, event.settled_amount)
