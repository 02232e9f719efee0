"""One key, any listed resource: ``POST /v1/call`` and ``/v1/proxy/{resourceId}/{path}`` route an agent's request to
a registry listing, pay its 402 from the agent's wallet through the wallet payer (the same path as
``POST /v1/wallets/{id}/pay``) with the price pinned to the listing, and record the call and its platform fee.

The wallet: the ``wallet`` field of ``POST /v1/call`` or the ``X402-Wallet`` header; without either, an agent key
bound to exactly one wallet uses that one. ``X402-Max-Amount`` is the pass-through form's ``maxAmount``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any, Final

import asyncpg
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from wallets import errors as wallet_errors
from wallets.outbound import DROPPED, Failed, Fetcher, Stream
from wallets.payer import Listed, PayRequest, WalletPayer, body_json
from wallets.service import WalletService
from wallets.store import Wallet
from x402.errors import BadRequest, NotFound, ValidationFailed, X402Error
from x402.logs import get_logger
from x402.service.appkeys import PROXY_PAYER, REGISTRY, SETTINGS, TRUST, WALLETS
from x402.service.http import json_object
from x402.service.http import json_response as _json
from x402.service.middleware import REQUEST_ID
from x402.service.platform.context import RESPONSE_HEADERS
from x402.service.platform.idempotency import DELEGATED
from x402.service.proxy import calls
from x402.service.registry.models import Resource
from x402.service.storage.scope import system_scope
from x402.service.wallets_api.access import Caller, caller_of, wallet_for
from x402.wire.codec import PAYMENT_RESPONSE, X_PAYMENT_RESPONSE
from x402.wire.models import parse_amount
from x402.wire.networks import to_caip2

log = get_logger("x402.proxy")
routes = web.RouteTableDef()

WALLET_HEADER: Final = "X402-Wallet"
MAX_AMOUNT_HEADER: Final = "X402-Max-Amount"
#: Our receipt of a routed call: base64 of JSON {callId, resourceId, walletId, paid, amount, fee, feeBps, ...}.
RECEIPT_HEADER: Final = "X402-Call-Receipt"
#: Caller headers never forwarded upstream: hop-by-hop, our credentials and controls, payment headers (ours to set).
STRIPPED_REQUEST: Final = DROPPED | {
    "authorization",
    "cookie",
    "x-api-key",
    "payment-signature",
    "x-payment",
    "idempotency-key",
    WALLET_HEADER.lower(),
    MAX_AMOUNT_HEADER.lower(),
}
#: Upstream headers never passed back: hop-by-hop, framing (the body is re-sent decoded), cookies.
STRIPPED_RESPONSE: Final = DROPPED | {"content-encoding", "set-cookie", "set-cookie2", "www-authenticate"}
METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE")
#: A complete streamed body up to this size is kept with the payment, so a replay of its Idempotency-Key has it.
REPLAY_KEEP: Final = 64 * 1024
#: The code a streamed call is marked with when its stream is cut (the Stream's failure reason, or the client gone).
CUT_CODES: Final = {"too_large": "upstream_too_large", "timeout": "upstream_timeout", "unreachable": "upstream_broken"}
CLIENT_GONE: Final = "client_disconnected"
STREAM_FAILED: Final = "stream_failed"
CATALOGUE: Final = "routed calls: any tenant's listing may be called (the public catalogue)"


class UpstreamTimeout(X402Error):
    """The upstream did not answer within ``X402_PROXY_TIMEOUT``."""

    status = 504
    code = "upstream_timeout"
    title = "Upstream timed out"


class NotReplayable(X402Error):
    """A replayed Idempotency-Key whose paid answer was streamed and not kept (too large, or cut off)."""

    status = 409
    code = "response_not_replayable"
    title = "Answer not replayable"


class UpstreamError(X402Error):
    """The upstream failed: unreachable, too large, an unusable 402, or a 5xx answer."""

    status = 502
    code = "upstream_error"
    title = "Upstream failed"


def _strings(doc: Mapping[str, Any], name: str) -> dict[str, str]:
    value = doc.get(name) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise BadRequest(f"{name} must be an object of strings", code="invalid_call")
    return value


def _target(resource: Resource, path: str, query: Mapping[str, str]) -> str:
    """The listing's URL, extended by ``path`` and ``query`` (the listed price covers what is under it)."""
    url = resource.url
    if path:
        url = url.rstrip("/") + "/" + path.lstrip("/")
    if query:
        url = str(URL(url, encoded=True).extend_query(dict(query)))
    return url


def listed_offers(resource: Resource) -> tuple[Listed, ...]:
    """The listing's offers (v2 ``amount``, v1 ``maxAmountRequired``) the live 402 is pinned to."""
    out: list[Listed] = []
    for entry in resource.accepts:
        raw = entry.get("amount", entry.get("maxAmountRequired"))
        try:
            amount = int(str(raw))
            network = to_caip2(str(entry.get("network")))
        except (ValueError, BadRequest):
            continue
        out.append(Listed(network, str(entry.get("asset")), str(entry.get("payTo")), amount))
    return tuple(out)


async def _resource(request: web.Request, ref: str, method: str) -> Resource:
    """A listed resource by registry id or URL (any owner's: the catalogue is public)."""
    store = request.app[REGISTRY]
    with system_scope(CATALOGUE):
        try:
            found = await store.get(uuid.UUID(ref))
        except ValueError:
            found = await store.find(ref, method) if ref.startswith(("http://", "https://")) else None
    if found is None or found.verification_status == "failed" or found.type != "http":
        raise NotFound("no such listed resource", code="resource_not_found")
    return found


async def _wallet(service: WalletService, caller: Caller, named: object) -> Wallet:
    """The paying wallet: named, or the only wallet an agent key is bound to."""
    if named is None:
        if caller.agent_wallets is not None and len(caller.agent_wallets) == 1:
            named = str(next(iter(caller.agent_wallets)))
        else:
            raise BadRequest(
                f"name the paying wallet: the wallet field or the {WALLET_HEADER} header", code="wallet_required"
            )
    try:
        wallet_id = uuid.UUID(str(named))
    except ValueError:
        raise NotFound("no such wallet", code="wallet_not_found") from None
    if caller.agent_wallets is not None and wallet_id not in caller.agent_wallets:
        raise NotFound("no such wallet", code="wallet_not_found")
    return await service.store.get(wallet_id, caller.tenant_id, any_tenant=caller.operator)


def _fee_bps(request: web.Request, tenant_id: uuid.UUID | None) -> int:
    settings = request.app[SETTINGS]
    if tenant_id is not None and str(tenant_id) in settings.platform_fee_overrides:
        return settings.platform_fee_overrides[str(tenant_id)]
    return settings.platform_fee_bps


def _upstream_problem(exc: wallet_errors.UpstreamFailed, host: str) -> X402Error:
    extra = {**exc.extra, "upstream": host}
    if exc.code == "upstream_timeout":
        return UpstreamTimeout(f"{host}: {exc.detail}", **extra)
    return UpstreamError(f"{host}: {exc.detail}", code=exc.code, **extra)


def _receipt(doc: Mapping[str, Any]) -> str:
    return base64.b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode("ascii")


async def _route(
    request: web.Request,
    *,
    ref: str,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes | None,
    max_amount: int | None,
    wallet_ref: object,
) -> web.StreamResponse:
    service = request.app[WALLETS]
    caller = await caller_of(request, service)
    resource = await _resource(request, ref, method)
    wallet = await _wallet(service, caller, wallet_ref)
    payer = request.app.get(PROXY_PAYER)
    if payer is None:
        raise ValidationFailed("wallets need a master key (X402_MASTER_KEY)", code="master_key_missing")
    url = _target(resource, path, query)
    payer.fetcher.check_url(url)  # the SSRF guard, before anything else happens
    trust = await request.app[TRUST].get("resource", str(resource.id))
    req = PayRequest(
        url=url,
        method=method,
        headers={k: v for k, v in headers.items() if k.lower() not in STRIPPED_REQUEST},
        body=body,
        max_amount=max_amount,
        listed=listed_offers(resource),
        resource_trust=None if trust is None else int(trust["score"]),
        stream=True,
    )
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 255:
        raise BadRequest("Idempotency-Key must be 1-255 characters", code="invalid_idempotency_key")
    request[DELEGATED] = True  # the wallet ledger keeps the outcome of a key (as POST /v1/wallets/{id}/pay)
    bps = _fee_bps(request, caller.tenant_id)
    call = calls.Call(
        id=uuid.uuid4(),
        tenant_id=caller.tenant_id,
        wallet_id=wallet.id,
        resource_id=resource.id,
        owner_tenant_id=resource.tenant_id,
        url=url,
        method=method,
        status="failed",
        fee_bps=bps,
        latency_ms=0,
    )
    host = URL(url).host or url
    started = time.perf_counter()
    try:
        result = await payer.pay(wallet, req, key)
    except wallet_errors.PaymentPending as exc:
        await _record(request, call, started, status="pending", code=exc.code)
        return _json(exc.to_problem(), 202)
    except wallet_errors.UpstreamFailed as exc:
        await _record(request, call, started, status="failed", code=exc.code)
        raise _upstream_problem(exc, host) from None
    except X402Error as exc:
        await _record(request, call, started, status="refused" if exc.status < 500 else "failed", code=exc.code)
        raise
    stream: Stream | None = result.get("stream")  # a paid answer whose body is still to come
    try:
        payment = result["payment"]
        upstream = result["upstream"] or {}
        # a replay of an Idempotency-Key paid nothing now: its row owes no fee (the first call's row has it)
        replayed = bool(payment.get("replayed"))
        paid = bool(payment.get("paid")) and not replayed
        amount = int(payment.get("amount", 0)) if paid else 0
        status = int(upstream.get("status", 502))
        # a declared Content-Length above X402_PROXY_MAX_BYTES is refused before any byte is sent (after paying:
        # the paid retry's headers only come back once the payment went out, so the record shows both)
        oversized = stream.oversized() if stream is not None else None
        code = "upstream_error" if status >= 500 else ("upstream_too_large" if oversized is not None else None)
        code = code or ("replayed" if replayed else None)
        done = await _record(
            request,
            call,
            started,
            status="paid" if paid else "free",
            amount=amount,
            payer=payment.get("payer"),
            pay_to=payment.get("payTo"),
            upstream_status=status,
            payment_id=payment.get("paymentId"),
            code=code,
        )
        receipt = {
            "callId": str(call.id),
            "resourceId": str(resource.id),
            "walletId": str(wallet.id),
            "paid": paid,
            "amount": str(amount),
            "feeBps": bps,
            "fee": str(done.fee),
            **({"replayed": True} if replayed else {}),
            **{k: payment[k] for k in ("paymentId", "transaction", "network", "payer", "payTo") if k in payment},
        }
        if status >= 500:
            raise UpstreamError(f"{host} answered {status}", upstream=host, upstreamStatus=status, receipt=receipt)
        if oversized is not None:
            raise UpstreamError(
                f"{host}: {oversized.detail}", code="upstream_too_large", upstream=host, receipt=receipt
            )
    except BaseException:
        if stream is not None:
            stream.close()
        raise
    if stream is not None:
        return await _stream(request, stream, upstream, receipt, done)
    if upstream.get("streamed") and "body" not in upstream:
        raise NotReplayable(
            "the answer paid under this Idempotency-Key was streamed and not kept (larger than "
            f"{REPLAY_KEEP} bytes, or cut off); use a new key to buy it again",
            receipt=receipt,
            paymentId=payment.get("paymentId"),
        )
    return _passthrough(upstream, receipt)


async def _record(request: web.Request, call: calls.Call, started: float, **changes: Any) -> calls.Call:
    from dataclasses import replace

    if isinstance(changes.get("payment_id"), str):
        changes["payment_id"] = uuid.UUID(changes["payment_id"])
    done = replace(call, latency_ms=round((time.perf_counter() - started) * 1000), **changes)
    await calls.record(request.app[WALLETS].pool, done)
    try:
        await request.app[TRUST].on_call(done.resource_id, done.wallet_id)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:  # the background pass catches up
        log.warning("trust_on_call_failed", error=type(exc).__name__)
    return done


def _headers(upstream: Mapping[str, Any], receipt: Mapping[str, Any]) -> CIMultiDict[str]:
    """The upstream's headers less hop-by-hop, framing and cookies, plus our receipt header."""
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in (upstream.get("headers") or {}).items():
        if name.lower() not in STRIPPED_RESPONSE:
            headers[name] = value
    headers[RECEIPT_HEADER] = _receipt(receipt)
    headers.setdefault("Access-Control-Expose-Headers", f"{PAYMENT_RESPONSE}, {X_PAYMENT_RESPONSE}, {RECEIPT_HEADER}")
    return headers


def _passthrough(upstream: Mapping[str, Any], receipt: Mapping[str, Any]) -> web.Response:
    """The upstream's answer as it came (status, headers, body), plus our receipt header."""
    raw = upstream.get("body") or ""
    body = base64.b64decode(raw) if upstream.get("bodyEncoding") == "base64" else str(raw).encode()
    return web.Response(status=int(upstream.get("status", 200)), body=body, headers=_headers(upstream, receipt))


async def _stream(
    request: web.Request, stream: Stream, upstream: Mapping[str, Any], receipt: Mapping[str, Any], call: calls.Call
) -> web.StreamResponse:
    """Send the paid answer as it arrives: status, headers and receipt now, the body chunk by chunk.

    The payment, the call row, its fee and the trust update are already written (once, before the first byte). A
    stream cut by a limit, by the upstream or by the client closes the connection without the body's end (no
    complete-looking truncated answer) and sets the row's ``code``; what was sent is noted on the payment.
    """
    resp = web.StreamResponse(status=stream.status, headers=_headers(upstream, receipt))
    resp.headers.update(request.get(RESPONSE_HEADERS) or {})  # (the platform hook adds them too late for a stream)
    if REQUEST_ID in request:
        resp.headers["X-Request-Id"] = request[REQUEST_ID]
    encoded = "content-encoding" in {k.lower() for k in stream.headers}
    if stream.declared is not None and not encoded:  # a decoded body has another length: it goes chunked
        resp.content_length = stream.declared
    sent = 0
    kept: list[bytes] | None = []
    outcome: str | None = None
    try:
        await resp.prepare(request)
        async with aclosing(stream.chunks()) as chunks:
            async for chunk in chunks:
                await resp.write(chunk)  # waits while the client's socket is full: nothing piles up here
                sent += len(chunk)
                if kept is not None and sent <= REPLAY_KEEP:
                    kept.append(chunk)
                else:
                    kept = None
    except Failed as exc:
        outcome = CUT_CODES.get(exc.reason, "upstream_broken")
    except ConnectionError:
        outcome = CLIENT_GONE
    except asyncio.CancelledError:
        outcome = CLIENT_GONE
        raise
    except Exception as exc:  # after a payment, never a 500: cut and record it
        log.exception("proxy_stream_failed", error=type(exc).__name__)
        outcome = STREAM_FAILED
    finally:
        stream.close()
        if outcome is not None and request.transport is not None:
            request.transport.close()  # the client sees the body cut, never a complete-looking truncated one
        await asyncio.shield(_streamed(request, call, sent, outcome, kept if outcome is None else None))
    return resp


async def _streamed(
    request: web.Request, call: calls.Call, sent: int, outcome: str | None, kept: list[bytes] | None
) -> None:
    """Write down how a stream ended: the call's code when cut, bytes and outcome (and a small body) on the payment."""
    pool = request.app[WALLETS].pool
    note: dict[str, Any] = {"bytes": sent, "complete": outcome is None, "outcome": outcome}
    if kept is not None:
        note |= body_json(b"".join(kept))
    try:
        if outcome is not None:
            await calls.set_code(pool, call.id, outcome)
            log.warning("proxy_stream_cut", call_id=str(call.id), outcome=outcome, bytes=sent)
        if call.payment_id is not None:
            await request.app[WALLETS].ledger.note_upstream(call.payment_id, note)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:  # the row and payment stand as written
        log.error("proxy_stream_note_failed", call_id=str(call.id), error=type(exc).__name__, bytes=sent)


def _max_amount(raw: Any) -> int | None:
    return None if raw is None else parse_amount(raw)


@routes.post("/v1/call")
async def call(request: web.Request) -> web.StreamResponse:
    """Call a listed resource by registry id or URL, paying its 402 from the agent's wallet at the listed price."""
    doc = await json_object(request)
    ref = doc.get("resource")
    if not isinstance(ref, str) or not ref:
        raise BadRequest("resource (a registry id or URL) is required", code="invalid_call")
    method = str(doc.get("method") or "GET").upper()
    if method not in METHODS:
        raise BadRequest(f"method must be one of {list(METHODS)}", code="invalid_call")
    path = doc.get("path") or ""
    if not isinstance(path, str):
        raise BadRequest("path must be a string", code="invalid_call")
    body: bytes | None = None
    if doc.get("bodyBase64") is not None:
        try:
            body = base64.b64decode(str(doc["bodyBase64"]), validate=True)
        except ValueError:
            raise BadRequest("bodyBase64 is not base64", code="invalid_call") from None
    elif doc.get("body") is not None:
        raw = doc["body"]
        body = raw.encode() if isinstance(raw, str) else json.dumps(raw).encode()
    return await _route(
        request,
        ref=ref,
        method=method,
        path=path,
        query=_strings(doc, "query"),
        headers=_strings(doc, "headers"),
        body=body,
        max_amount=_max_amount(doc.get("maxAmount")),
        wallet_ref=doc.get("wallet") or request.headers.get(WALLET_HEADER),
    )


async def proxy(request: web.Request) -> web.StreamResponse:
    """Pass-through: the request goes to the listing's URL + ``path`` with its query, headers (filtered) and body."""
    body = await request.read()
    return await _route(
        request,
        ref=request.match_info["resourceId"],
        method=request.method,
        path=request.match_info["path"],
        query=dict(request.query),
        headers=dict(request.headers),
        body=body or None,
        max_amount=_max_amount(request.headers.get(MAX_AMOUNT_HEADER)),
        wallet_ref=request.headers.get(WALLET_HEADER),
    )


for _method in METHODS:
    routes.route(_method, "/v1/proxy/{resourceId}/{path:.*}")(proxy)


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit") or "100"
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise BadRequest("limit must be 1-1000", code="invalid_limit")
    return int(raw)


@routes.get("/v1/calls")
async def list_calls(request: web.Request) -> web.Response:
    """The caller's routed calls, newest first (an agent key: its wallets' calls)."""
    service = request.app[WALLETS]
    caller = await caller_of(request, service)
    found = await calls.list_calls(service.pool, caller.tenant_id, caller.agent_wallets, _limit(request))
    return _json({"calls": found})


@routes.get("/v1/calls/summary")
async def calls_summary(request: web.Request) -> web.Response:
    """The caller's usage per resource: calls, paid calls, amount paid, platform fees owed, mean latency."""
    service = request.app[WALLETS]
    caller = await caller_of(request, service)
    return _json({"resources": await calls.summary(service.pool, caller.tenant_id, caller.agent_wallets)})


@routes.get("/v1/resources/{id}/usage")
async def resource_usage(request: web.Request) -> web.Response:
    """The listing owner's view: every caller's calls to its resource as aggregates, its revenue, its trust."""
    from x402.service.registry.access import check_owner, writer

    who = writer(request)
    try:
        resource_id = uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound("no such resource", code="resource_not_found") from None
    found = await request.app[REGISTRY].get(resource_id)  # the owner's scope: another tenant's listing is not found
    if found is None:
        raise NotFound("no such resource", code="resource_not_found")
    check_owner(who, found.tenant_id)
    with system_scope("resource usage: the owner sees aggregates of every caller's calls to its listing"):
        usage = await calls.usage(request.app[WALLETS].pool, resource_id)
    trust = await request.app[TRUST].get("resource", str(resource_id))
    return _json({"resourceId": str(resource_id), **usage, "trust": trust})


@routes.get("/v1/wallets/{id}/trust")
async def wallet_trust(request: web.Request) -> web.Response:
    """The wallet's trust score (docs/trust.md), recomputed now from its ledger."""
    service = request.app[WALLETS]
    wallet = await wallet_for(request, service, await caller_of(request, service))
    score = await request.app[TRUST].wallet(wallet.id)
    return _json({"walletId": str(wallet.id), **score})


async def _ctx(app: web.Application) -> AsyncIterator[None]:
    service = app[WALLETS]
    settings = app[SETTINGS]
    fetcher = Fetcher(
        allow_private=settings.allow_private_outbound,
        timeout=settings.proxy_timeout,
        max_bytes=settings.proxy_max_bytes,
    )
    base = service.payer
    if base is not None and service.keyring is not None:
        app[PROXY_PAYER] = WalletPayer(
            service.store,
            service.ledger,
            service.approvals,
            fetcher,
            service.keyring,
            kinds=base.kinds,
            screen=base.screen,
            status=base.status,
            trust=base.trust,
        )
    yield
    await fetcher.close()


def install(app: web.Application) -> None:
    """Mount the routing proxy, the calls views and wallet trust (after the wallets and trust contexts)."""
    app.cleanup_ctx.append(_ctx)
    app.add_routes(routes)
