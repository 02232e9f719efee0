"""Routes: wallets (create, read, policy, pause/resume, budget, balance, pay, approvals, agent keys).

Webhooks (``/v1/webhooks``) are the service's one webhook machinery, ``x402/service/events/routes.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from risk.engine import RiskEngine
from risk.model import RiskContext
from wallets.balance import balances
from wallets.errors import ApprovalPending, PaymentPending
from wallets.payer import PayeeScreen, PayRequest
from wallets.policy import Policy
from wallets.service import WalletService
from wallets.store import Wallet
from x402.errors import BadRequest, ValidationFailed
from x402.service.appkeys import CHAINS, DB, OPTIONS, RISK, SETTINGS, WALLETS
from x402.service.http import json_object as _body
from x402.service.http import json_response as _json
from x402.service.registry.models import check_http_url
from x402.service.storage.scope import system_scope
from x402.service.wallets_api.access import Caller, caller_of, platform_audit, wallet_for, wallet_id_of
from x402.wire.models import PaymentRequirements, encode_json

routes = web.RouteTableDef()


def _service(request: web.Request) -> WalletService:
    return request.app[WALLETS]


async def _manager(request: web.Request) -> tuple[WalletService, Caller]:
    """The service and a caller allowed to manage wallets (a tenant key with the wallets scope, not an agent key)."""
    service = _service(request)
    caller = await caller_of(request, service)
    caller.require_manager()
    return service, caller


async def _managed_wallet(request: web.Request) -> tuple[WalletService, Caller, Wallet]:
    """As ``_manager`` for the wallet in the path: another tenant's wallet is 404 before an agent key is refused."""
    service = _service(request)
    caller = await caller_of(request, service)
    wallet = await wallet_for(request, service, caller)
    caller.require_manager()
    return service, caller, wallet


@routes.post("/v1/wallets")
async def create_wallet(request: web.Request) -> web.Response:
    """Create a wallet: service-generated keys (or ``import``), a policy; keys are never returned."""
    service, caller = await _manager(request)
    doc = await _body(request)
    chains = doc.get("chains", ["evm"])
    imports = doc.get("import") or {}
    if not isinstance(chains, list) or not all(isinstance(c, str) for c in chains):
        raise ValidationFailed('chains must be a list like ["evm", "solana"]', code="invalid_chain")
    if not isinstance(imports, dict) or not all(isinstance(v, str) for v in imports.values()):
        raise ValidationFailed("import must map a chain to a private key string", code="invalid_key")
    wallet = await service.store.create(
        tenant_id=caller.tenant_id,
        name=str(doc.get("name") or ""),
        chains=chains,
        policy=Policy.from_json(doc.get("policy")),
        imports=imports,
        actor=caller.actor,
        request_id=caller.request_id,
    )
    return _json(wallet.to_json(), 201)


@routes.get("/v1/wallets")
async def list_wallets(request: web.Request) -> web.Response:
    """The caller's wallets."""
    service = _service(request)
    caller = await caller_of(request, service)
    wallets = await service.store.list_all(caller.tenant_id, any_tenant=caller.operator)
    if caller.agent_wallets is not None:
        wallets = [w for w in wallets if w.id in caller.agent_wallets]
    return _json({"wallets": [w.to_json() for w in wallets]})


@routes.get("/v1/wallets/{id}")
async def get_wallet(request: web.Request) -> web.Response:
    """One wallet with its remaining budget."""
    service = _service(request)
    wallet = await wallet_for(request, service, await caller_of(request, service))
    return _json({**wallet.to_json(), "budget": await service.ledger.budget(wallet)})


@routes.get("/v1/wallets/{id}/budget")
async def get_budget(request: web.Request) -> web.Response:
    """Remaining budget: total and per rolling window."""
    service = _service(request)
    wallet = await wallet_for(request, service, await caller_of(request, service))
    return _json(await service.ledger.budget(wallet))


@routes.get("/v1/wallets/{id}/balance")
async def get_balance(request: web.Request) -> web.Response:
    """On-chain balances of the wallet's addresses for every configured asset (on chains whose adapter reads them)."""
    service = _service(request)
    wallet = await wallet_for(request, service, await caller_of(request, service))
    found = await balances(
        request.app[CHAINS], request.app[SETTINGS].networks, lambda net: wallet.address_for(service.kinds, net)
    )
    return _json({"walletId": str(wallet.id), "balances": found})


@routes.get("/v1/wallets/{id}/payments")
async def get_payments(request: web.Request) -> web.Response:
    """The wallet's ledger, newest first."""
    service = _service(request)
    wallet = await wallet_for(request, service, await caller_of(request, service))
    return _json({"payments": await service.ledger.payments(wallet.id)})


@routes.put("/v1/wallets/{id}/policy")
async def put_policy(request: web.Request) -> web.Response:
    """Replace the policy (audited)."""
    service, caller, wallet = await _managed_wallet(request)
    policy = Policy.from_json(await _body(request))
    updated = await service.store.set_policy(wallet, policy, caller.actor, caller.request_id)
    return _json(updated.to_json())


@routes.post("/v1/wallets/{id}/pause")
async def pause(request: web.Request) -> web.Response:
    """Pause the wallet (audited)."""
    service, caller, wallet = await _managed_wallet(request)
    reason = str((await _body(request)).get("reason") or "manual")[:200]
    return _json((await service.store.pause(wallet.id, reason, caller.actor, caller.request_id)).to_json())


@routes.post("/v1/wallets/{id}/resume")
async def resume(request: web.Request) -> web.Response:
    """Resume a paused wallet (audited)."""
    service, caller, wallet = await _managed_wallet(request)
    return _json((await service.store.resume(wallet.id, caller.actor, caller.request_id)).to_json())


@routes.post("/v1/wallets/{id}/pay")
async def pay(request: web.Request) -> web.Response:
    """Fetch a URL and pay its 402 from this wallet, within policy and budget."""
    service = _service(request)
    wallet = await wallet_for(request, service, await caller_of(request, service))
    if service.payer is None:
        raise ValidationFailed("wallets need a master key (X402_MASTER_KEY)", code="master_key_missing")
    req = PayRequest.from_json(await _body(request))
    # the URL has the documented shape before the wallet's state is looked at: 400 outbound_refused (as the guard
    # answers other URLs it will not fetch), not 423
    check_http_url(req.url, code="outbound_refused")
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 255:
        raise BadRequest("Idempotency-Key must be 1-255 characters", code="invalid_idempotency_key")
    from x402.service.platform.idempotency import DELEGATED

    # money may move under this key: the ledger keeps its outcome, so the platform never frees or freezes the key
    request[DELEGATED] = True
    try:
        result = await service.payer.pay(wallet, req, key)
    except (ApprovalPending, PaymentPending) as exc:
        # 202 is not an error: the payment waits; render it like the others for one client code path
        return _json(exc.to_problem(), 202)
    return _json(result)


@routes.get("/v1/wallets/{id}/approvals")
async def list_approvals(request: web.Request) -> web.Response:
    """Approvals of the wallet (``?status=pending``)."""
    service = _service(request)
    wallet = await wallet_for(request, service, await caller_of(request, service))
    return _json({"approvals": await service.approvals.list_all(wallet.id, request.query.get("status"))})


async def _decide(request: web.Request, approve: bool) -> web.Response:
    service, caller, wallet = await _managed_wallet(request)
    approval_id = wallet_id_of(request, "aid")
    out = await service.approvals.decide(wallet.id, approval_id, approve, caller.actor, caller.request_id)
    return _json(out)


@routes.post("/v1/wallets/{id}/approvals/{aid}/approve")
async def approve(request: web.Request) -> web.Response:
    """Approve a pending payment; the agent then retries pay with ``approvalId``."""
    return await _decide(request, True)


@routes.post("/v1/wallets/{id}/approvals/{aid}/reject")
async def reject(request: web.Request) -> web.Response:
    """Reject a pending payment."""
    return await _decide(request, False)


@routes.post("/v1/wallets/{id}/agent-keys")
async def create_agent_key(request: web.Request) -> web.Response:
    """An API key (scope ``wallets``) that may only pay from and read this wallet; shown once."""
    from x402.service.appkeys import PLATFORM
    from x402.service.platform.idempotency import REPLAY_BODY
    from x402.service.platform.tenants import Actor

    service, caller, wallet = await _managed_wallet(request)
    if PLATFORM not in request.app or wallet.tenant_id is None:
        raise ValidationFailed(
            "agent keys need the platform (tenants + API keys) and a tenant wallet", code="agent_keys_unavailable"
        )
    meta, plaintext = await request.app[PLATFORM].store.create_key(
        wallet.tenant_id,
        Actor(caller.actor, caller.request_id),
        scopes=["wallets"],
        name=f"agent:{wallet.id}",
        agent=True,
    )
    import uuid

    await service.store.bind_agent_key(uuid.UUID(meta["id"]), wallet.id)
    # an idempotent replay must never hand the secret out again
    request[REPLAY_BODY] = encode_json({**meta, "walletId": str(wallet.id)})
    return _json({**meta, "walletId": str(wallet.id), "key": plaintext}, 201)


def risk_screen(engine: RiskEngine) -> PayeeScreen:
    """The wallet payer's payee screen: sanctions and address lists of the risk engine (no behaviour counted)."""

    async def screen(wallet: Wallet, offer: PaymentRequirements, amount: int, url: str, payer: str) -> str | None:
        ctx = RiskContext(
            network=offer.network,
            asset=offer.asset,
            payer=payer,
            pay_to=offer.pay_to,
            amount=amount,
            resource=url,
            tenant_id=str(wallet.tenant_id) if wallet.tenant_id else None,
        )
        assessment = await engine.screen(ctx)
        return assessment.summary() if assessment.blocked else None

    return screen


async def _ctx(app: web.Application) -> AsyncIterator[None]:
    engine = app.get(RISK)
    service = WalletService(
        app[DB],
        app[SETTINGS],
        app[OPTIONS].wallet_options,
        audit=platform_audit,
        screen=risk_screen(engine) if engine is not None else None,
        chains=app.get(CHAINS),
    )
    app[WALLETS] = service
    with system_scope("wallet start-up and background jobs: data keys, reservations, pending payments, deliveries"):
        await service.prepare()
        service.start()
    yield
    await service.close()


def install(app: web.Application) -> None:
    """Mount the wallet API (after the database and chains contexts)."""
    app.cleanup_ctx.append(_ctx)
    app.add_routes(routes)
