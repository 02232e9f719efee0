"""Registry HTTP API: resource CRUD and import under ``/v1/resources``, bazaar discovery and ranked search."""

from __future__ import annotations

import re
import uuid
from typing import Any, Final

import msgspec
from aiohttp import web
from yarl import URL

from x402.errors import BadRequest, Forbidden, NotFound, RateLimited
from x402.service.appkeys import OUTBOUND, REGISTRY
from x402.service.http import json_response as _json
from x402.service.registry.access import check_owner, reader, sees_owner, writer
from x402.service.registry.crawl import discover, import_origin, judge
from x402.service.registry.models import PATCHABLE, Resource, draft_from_json, is_atomic
from x402.service.registry.outbound import OutboundFailed
from x402.service.registry.probe import probe
from x402.service.registry.store import Filters
from x402.service.registry.validate import parse_request, validate_listing
from x402.service.storage.scope import system_scope
from x402.wire import jsonlimits
from x402.wire.models import DiscoveryPage, Pagination

routes = web.RouteTableDef()

MAX_QUERY: Final = 256
#: ``extensions``: up to ten comma-separated extension keys (``bazaar,sign-in-with-x``); a resource matches when
#: it declares all of them. The OpenAPI document publishes this pattern.
EXTENSIONS_PATTERN: Final = "^([A-Za-z0-9._-]{1,64}(,[A-Za-z0-9._-]{1,64}){0,9})?$"
_EXTENSIONS: Final = re.compile(EXTENSIONS_PATTERN)
MAX_OFFSET: Final = 10_000
#: At most this many resources rated (or re-rated) per rater per hour; each rater has one rating per resource.
RATINGS_PER_HOUR: Final = 30


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    return jsonlimits.loads(raw) if raw else None


#: A UUID only, so /v1/resources/import does not also answer GET, PATCH and DELETE (its Allow header stays exact)
_BY_ID = "/v1/resources/{id:[0-9a-fA-F-]{36}}"


def _id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound("no such resource", code="resource_not_found") from None


async def _resource(request: web.Request) -> Resource:
    found = await request.app[REGISTRY].get(_id(request))
    if found is None:
        raise NotFound("no such resource", code="resource_not_found")
    return found


#: Public discovery lists the resources of every owner (never who owns them).
CATALOGUE = "public discovery: the catalogue lists every owner's resources"

# ------------------------------------------------------------------------------------------ CRUD


@routes.post("/v1/resources")
async def create_resource(request: web.Request) -> web.Response:
    """Register a paid resource; 201 with the stored resource."""
    who = writer(request)
    draft = draft_from_json(await _body(request))
    request.app[OUTBOUND].check_url(draft.url)
    stored = await request.app[REGISTRY].create(draft, tenant_id=who.tenant_id)
    return _json(stored.to_json(owner=True), status=201)


@routes.get(_BY_ID)
async def get_resource(request: web.Request) -> web.Response:
    """One resource with its verification, liveness and popularity signals (``tenantId`` for its owner only)."""
    who = reader(request)
    found = await _resource(request)
    owner = sees_owner(who, found.tenant_id)
    if found.tenant_id is not None and not owner:
        # another tenant's listing is 404 here, as every tenant object is (the public view is /discovery)
        raise NotFound("no such resource", code="resource_not_found")
    return _json(found.to_json(owner=owner))


def _camel(resource: Resource) -> dict[str, Any]:
    d = resource.to_draft()
    return {
        "url": d.url,
        "method": d.method,
        "type": d.type,
        "toolName": d.tool,
        "x402Version": d.x402_version,
        "accepts": d.accepts,
        "description": d.description,
        "mimeType": d.mime_type,
        "serviceName": d.service_name,
        "tags": d.tags,
        "iconUrl": d.icon_url,
        "category": d.category,
        "inputSchema": d.input_schema,
        "outputSchema": d.output_schema,
        "extensions": d.extensions,
    }


@routes.patch(_BY_ID)
async def patch_resource(request: web.Request) -> web.Response:
    """Change the provider-declared fields (not the url/method/tool key)."""
    who = writer(request)
    current = await _resource(request)
    check_owner(who, current.tenant_id)
    patch = await _body(request)
    if not isinstance(patch, dict) or not patch:
        raise BadRequest("expected a JSON object of fields to change", code="invalid_body")
    unknown = sorted(set(patch) - PATCHABLE)
    if unknown:
        raise BadRequest(f"cannot change {unknown}; patchable: {sorted(PATCHABLE)}", code="immutable_field")
    merged = {**_camel(current), **patch}
    if "x402Version" in patch and "accepts" not in patch:
        raise BadRequest("changing x402Version needs accepts of that version", code="invalid_accepts")
    draft = draft_from_json(merged)
    updated = await request.app[REGISTRY].update(current.id, draft)
    if updated is None:
        raise NotFound("no such resource", code="resource_not_found")
    return _json(updated.to_json(owner=True))


@routes.delete(_BY_ID)
async def delete_resource(request: web.Request) -> web.Response:
    """Remove a resource."""
    who = writer(request)
    current = await _resource(request)
    check_owner(who, current.tenant_id)
    await request.app[REGISTRY].delete(current.id)
    return web.Response(status=204)


@routes.post(_BY_ID + "/ratings")
async def rate_resource(request: web.Request) -> web.Response:
    """Rate a resource 1..5 (``{"rating": 4}``): one rating per tenant and resource (a new one replaces it)."""
    who = writer(request)
    body = await _body(request)
    rating = body.get("rating") if isinstance(body, dict) else None
    if isinstance(rating, float) and rating.is_integer():
        rating = int(rating)  # JSON Schema's integer includes 4.0
    if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
        raise BadRequest("rating must be an integer from 1 to 5", code="invalid_rating")
    store = request.app[REGISTRY]
    with system_scope("ratings: any caller may rate any listed resource, whoever owns it"):
        current = await _resource(request)
        if current.tenant_id is not None and current.tenant_id == who.tenant_id:
            raise Forbidden("a tenant cannot rate its own resource", code="own_resource_rating")
        await _rating_limit(request)
        if await store.recent_ratings(who.tenant_id, 3600) >= RATINGS_PER_HOUR:
            raise RateLimited(
                f"at most {RATINGS_PER_HOUR} ratings per hour", code="rating_rate_limited", retryAfter=3600
            )
        rated = await store.rate(current.id, rating, tenant_id=who.tenant_id)
    if rated is None:
        raise NotFound("no such resource", code="resource_not_found")
    return _json(rated.to_json(owner=who.operator))


async def _rating_limit(request: web.Request) -> None:
    """The tenant's per-second API rate limit (its tier) also covers ratings."""
    from x402.service.appkeys import PLATFORM
    from x402.service.platform.auth import principal_of

    principal = principal_of(request)
    if PLATFORM not in request.app or principal is None or principal.tenant_id is None:
        return
    platform = request.app[PLATFORM]
    await platform.limiter.hit(str(principal.tenant_id), platform.tier(principal.tier))


@routes.post(_BY_ID + "/verify")
async def verify_resource(request: web.Request) -> web.Response:
    """Probe the resource now and check its origin's ownership proofs; answers the updated resource."""
    who = writer(request)
    current = await _resource(request)
    check_owner(who, current.tenant_id)
    store, outbound = request.app[REGISTRY], request.app[OUTBOUND]
    result = await probe(outbound, current.url, current.method)
    origin = str(URL(current.url).origin())
    proofs: list[str] = []
    if result.ok:
        try:
            proofs = (await discover(outbound, origin)).proofs
        except (OutboundFailed, BadRequest):
            proofs = []
    await store.set_verification(current.id, judge(result, origin, proofs))
    await store.record_probe(current.id, result.up, result.reason)
    return _json((await _resource(request)).to_json(owner=True))


@routes.post("/v1/resources/import")
async def import_resources(request: web.Request) -> web.Response:
    """Crawl ``{"origin": "https://..."}``: its /.well-known/x402 and /openapi.json, each resource probed."""
    who = writer(request)
    body = await _body(request)
    origin = body.get("origin") if isinstance(body, dict) else None
    report = await import_origin(request.app[REGISTRY], request.app[OUTBOUND], origin, tenant_id=who.tenant_id)
    return _json(report)


@routes.post("/v1/resources/validate")
async def validate_resource(request: web.Request) -> web.Response:
    """Check a listing before it is crawled: reachable, answers 402, parses, bazaar valid, ownership proven."""
    writer(request)
    url, method = parse_request(await _body(request))
    outbound = request.app[OUTBOUND]
    outbound.check_url(url)  # a private or refused address is a 400, as for imports
    return _json(await validate_listing(outbound, url, method))


# ------------------------------------------------------------------------------------- discovery


def _int_param(request: web.Request, name: str, default: int, low: int, high: int, code: str) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high}", code=code)
    return int(raw)


#: ``minTrust``: an integer 0..100 without leading zeros (empty: no minimum)
MIN_TRUST_PATTERN = "^([0-9]|[1-9][0-9]|100)?$"
_MIN_TRUST = re.compile("[0-9]|[1-9][0-9]|100")


def _filters(request: web.Request, *, search: bool) -> Filters:
    q = request.query
    rtype = q.get("type") or None
    if rtype is not None and rtype not in ("http", "mcp"):
        raise BadRequest("type must be http or mcp", code="invalid_type")
    max_price = q.get("maxPrice") or q.get("max_price") if search else None
    if max_price is not None and not is_atomic(max_price):
        raise BadRequest("maxPrice must be an atomic amount (integer string)", code="invalid_max_price")
    min_trust = q.get("minTrust") or None if search else None
    if min_trust is not None and _MIN_TRUST.fullmatch(min_trust) is None:
        raise BadRequest("minTrust must be an integer from 0 to 100", code="invalid_min_trust")
    raw_ext = q.get("extensions", "")
    if _EXTENSIONS.fullmatch(raw_ext) is None:
        raise BadRequest(
            "extensions must be up to 10 comma-separated extension keys (letters, digits, . _ -)",
            code="invalid_extensions",
        )
    return Filters(
        type=rtype,
        extensions=tuple(dict.fromkeys(e for e in raw_ext.split(",") if e)),
        pay_to=q.get("payTo") or None,
        scheme=q.get("scheme") or None,
        network=q.get("network") or None,
        category=(q.get("category") or None) if search else None,
        max_price=int(max_price) if max_price is not None else None,
        min_trust=int(min_trust) if min_trust is not None else None,
    )


@routes.get("/discovery/resources")
async def discovery_resources(request: web.Request) -> web.Response:
    """Bazaar discovery (architecture.md §7.2): newest first, offset pagination."""
    limit = _int_param(request, "limit", 20, 1, 100, "invalid_limit")
    offset = _int_param(request, "offset", 0, 0, 10**9, "invalid_offset")
    with system_scope(CATALOGUE):
        items, total = await request.app[REGISTRY].page(_filters(request, search=False), limit, offset)
    page = DiscoveryPage(
        items=[r.to_item() for r in items], pagination=Pagination(limit=limit, offset=offset, total=total)
    )
    return _json(page)


#: A search cursor is the offset of the next page in decimal; the OpenAPI document publishes this pattern, and an
#: offset past ``MAX_OFFSET`` is a position beyond the last page (an empty page), not an error.
CURSOR_PATTERN: Final = "^(0|[1-9][0-9]{0,8})?$"
_CURSOR: Final = re.compile(r"0|[1-9][0-9]{0,8}")


def _cursor_offset(raw: str | None) -> int:
    if not raw:
        return 0
    if _CURSOR.fullmatch(raw) is None:
        raise BadRequest("cursor is not one this service issued (a decimal offset)", code="invalid_cursor")
    return int(raw)


def _cursor(offset: int) -> str:
    return str(offset)


@routes.get("/discovery/search")
async def discovery_search(request: web.Request) -> web.Response:
    """Ranked full-text search (weights in ``x402.service.registry.ranking``); cursor pagination."""
    query = request.query.get("query", request.query.get("q", "")).strip()
    if len(query) > MAX_QUERY:
        raise BadRequest(f"query is longer than {MAX_QUERY} characters", code="invalid_query")
    limit = _int_param(request, "limit", 20, 1, 100, "invalid_limit")
    offset = _cursor_offset(request.query.get("cursor"))
    filters = _filters(request, search=True)
    found: list[Resource] = []
    if offset <= MAX_OFFSET:  # deeper offsets are past the last page this service issues
        with system_scope(CATALOGUE):
            found = await request.app[REGISTRY].search(query, filters, limit, offset)
    more = len(found) > limit and offset + limit <= MAX_OFFSET
    body = {
        "x402Version": 2,
        "resources": [msgspec.to_builtins(r.to_item()) for r in found[:limit]],
        "pagination": {"limit": limit, "cursor": _cursor(offset + limit) if more else None},
    }
    return _json(body)
