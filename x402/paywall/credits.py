"""Routes paid in prepaid credits (issue 20): burn the customer's credits instead of, or before, an x402 payment.

A route declares a ``CreditPrice`` (``PaidRoute(credits=...)`` / ``@paid(credits=...)``): ``credits`` per request,
or ``units`` of a ``meter`` at the customer's plan's burn rate, and a mode:

* ``credits``: credits only. No customer credential is a 401 ``customer_credential_required``; a balance that does
  not cover the price is a 402 problem ``insufficient_credits`` with ``balance``, ``needed`` and ``topUpUrl`` (no
  x402 challenge: the route sells no single request).
* ``credits-then-x402``: a customer whose credits cover the price is served from them; anyone else (no credential,
  not enough credits) gets the route's normal x402 402 and pays per request. A request that carries an x402
  payment is a payment, never a burn.

The customer is whoever the provider's ``CustomerResolver`` says the request belongs to: typically a customer API
key in a header (``header_customer``), resolved by the provider's own lookup, or the address that signed the request
with Sign-In-With-X (``siwx_customer``); ``first_customer`` tries several. The burn goes through a
``CreditLedger``: the service's ledger in process (``x402.service.metering.paywall.AppCredits``) or over HTTP with
the provider's key (``RemoteCredits``), the same two ways the paywall reaches a facilitator.

Exactly once per request: the burn is keyed by the request (the client's ``Idempotency-Key``, else a fresh id,
hashed with method, path and query); a retry under the same key while its burn stands is served without a second
burn. The burn happens before the handler (so concurrent requests can never spend the same credit twice) and is
a hold until the handler answered: then the paywall captures it (``CreditLedger.capture``, the charge becomes
final); it is refunded (a ``burn_refund`` ledger entry) when the handler raises or answers ``refund_status`` or
above (5xx by default), as a payment is not settled when the handler fails; a retry of a refunded key burns again.
A charge neither captured nor refunded (the process died in between, or the refund call failed) is refunded by the
service's hold pass once it has been held for the hold timeout (``X402_CREDIT_HOLD_TIMEOUT``). Responses
carry ``X402-Credits-Remaining`` (the balance after) and ``X402-Credits-Charged``. With a ``meter`` price, a served
request is also a usage event of that meter (id = the burn's reference, so it counts once).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from aiohttp import web

from x402.errors import ConfigError, DependencyError, InsufficientCredits, InvalidPaymentHeader, X402Error
from x402.logs import get_logger
from x402.paywall import siwx as siwx_lib
from x402.paywall.offers import MODES, CreditPrice
from x402.paywall.responses import problem
from x402.wire import siwx as siwx_wire

log = get_logger("x402.paywall.credits")

#: The customer's balance after this request (a refunded request shows the balance with its credits back).
CREDITS_REMAINING: Final = "X402-Credits-Remaining"
#: Credits this request burned (0 when refunded; a retry under a standing key shows the original burn).
CREDITS_CHARGED: Final = "X402-Credits-Charged"
IDEMPOTENCY_KEY: Final = "Idempotency-Key"
#: The default header of ``header_customer``.
CUSTOMER_KEY: Final = "X-Customer-Key"
_KEY: Final = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True, slots=True)
class Charge:
    """One request's burn: its key, the ledger reference it is stored under (``key``, or ``key/n`` after
    refunds), credits taken, the balance after, and whether it is new (False: a retry under a key whose burn
    stands, nothing taken now)."""

    customer: str
    key: str
    reference: str
    credits: int
    balance: int
    new: bool


class CreditLedger(Protocol):
    """Where the paywall burns, refunds and meters (in process or over HTTP)."""

    async def charge(self, customer: str, key: str, price: CreditPrice) -> Charge:
        """Burn the price once per ``key``; ``InsufficientCredits`` when the balance does not cover it."""
        ...

    async def capture(self, customer: str, key: str) -> str:
        """The handler answered: make the held burn of ``key`` final; its state after (``captured``, or
        ``refunded`` when the hold pass gave it back first)."""
        ...

    async def refund(self, customer: str, key: str) -> int:
        """Give the standing burn of ``key`` back; the balance after."""
        ...

    async def record_usage(self, customer: str, meter: str, units: int, event_id: str) -> None:
        """One usage event (idempotent by ``event_id``)."""
        ...

    def topup_url(self, customer: str, request: web.Request) -> str | None:
        """Where this customer buys credits, if the ledger knows."""
        ...


#: The customer a request belongs to, or None (no credential, unknown credential).
CustomerResolver = Callable[[web.Request], Awaitable[str | None]]


def header_customer(lookup: Callable[[str], Awaitable[str | None]], header: str = CUSTOMER_KEY) -> CustomerResolver:
    """A resolver reading a customer API key from ``header`` and mapping it with the provider's ``lookup`` (its own
    customer table, a cache of it, ...) to a customer id; a missing header or an unknown key is no customer."""

    async def resolve(request: web.Request) -> str | None:
        raw = request.headers.get(header)
        if not raw:
            return None
        return await lookup(raw)

    return resolve


def siwx_customer(config: siwx_lib.SiwxConfig, public_url: str | None = None) -> CustomerResolver:
    """A resolver naming the customer by the address that signed this request's ``SIGN-IN-WITH-X`` header (EVM
    lower-case, Solana base58): a CAIP-122 message for this origin, signed by one of ``config.chains``, fresh
    (``max_age``), its nonce used once (``config.store``), so each request carries a new signature. A missing or
    refused header is no customer. ``public_url``: the origin clients see, behind a proxy."""
    if not config.chains:
        raise ConfigError(
            "siwx_customer needs SiwxConfig(chains=[...]): a credit route has no offers to take them from"
        )

    async def resolve(request: web.Request) -> str | None:
        header = request.headers.get(siwx_wire.HEADER)
        if header is None:
            return None
        base = public_url.rstrip("/") if public_url else f"{request.scheme}://{request.host}"
        try:
            payload = siwx_wire.decode_header(header)
            siwx_lib.check_message(payload, resource_url=base + request.path, chains=config.chains, config=config)
            address = await siwx_lib.check_signature(payload, config)
            expires = siwx_wire.parse_time(payload.expiration_time) if payload.expiration_time else None
            until = expires or datetime.now(UTC) + timedelta(seconds=config.max_age)
            if not await config.store.use_nonce(payload.nonce, until):
                raise siwx_wire.SiwxRefused(siwx_wire.NONCE_REUSED, "this sign-in message was already used")
        except (siwx_wire.SiwxRefused, InvalidPaymentHeader) as refused:
            log.info("credits_sign_in_refused", path=request.path, code=refused.code)
            return None
        return siwx_lib.normalize_address(address)

    return resolve


def first_customer(*resolvers: CustomerResolver) -> CustomerResolver:
    """The first customer any of ``resolvers`` names (e.g. a customer key, else a signed-in address)."""

    async def resolve(request: web.Request) -> str | None:
        for resolver in resolvers:
            customer = await resolver(request)
            if customer is not None:
                return customer
        return None

    return resolve


@dataclass(frozen=True, slots=True)
class CreditConfig:
    """A paywall's credit settings: the ledger, how a request names its customer, where to top up.

    ``topup_url``: a template with ``{customer}`` (default: the ledger's own top-up route); ``refund_status``: a
    handler answer at or above it gives the credits back (500: server errors; 400: any failure, as payments)."""

    ledger: CreditLedger
    customer: CustomerResolver
    topup_url: str | None = None
    refund_status: int = 500

    def __post_init__(self) -> None:
        if not 400 <= self.refund_status <= 599:
            raise ConfigError("CreditConfig.refund_status must be from 400 to 599")


#: The burn a request of a credit route was served on.
CHARGE: web.RequestKey[Charge] = web.RequestKey("x402_credit_charge")

Fallback = Callable[[], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def request_key(request: web.Request) -> str | web.Response:
    """The ledger key of this request: the client's ``Idempotency-Key`` (else a fresh id) with method, path and
    query, hashed; a malformed ``Idempotency-Key`` is a 400."""
    raw = request.headers.get(IDEMPOTENCY_KEY)
    if raw is None:
        raw = uuid.uuid4().hex
    elif not _KEY.fullmatch(raw):
        return problem(400, "invalid_idempotency_key", "Idempotency-Key must be 1-255 visible ASCII characters")
    digest = hashlib.sha256(f"{request.method} {request.path_qs} {raw}".encode()).hexdigest()[:40]
    return f"req:{digest}"


def _topup(config: CreditConfig, customer: str, request: web.Request) -> str | None:
    if config.topup_url is not None:
        return config.topup_url.replace("{customer}", customer)
    return config.ledger.topup_url(customer, request)


def _failed(step: str, exc: Exception) -> web.Response:
    if isinstance(exc, X402Error) and 400 <= exc.status < 500:
        return problem(exc.status, exc.code, exc.detail, **exc.extra)
    if isinstance(exc, DependencyError):
        log.warning("credits_dependency_failed", step=step, code=exc.code, dependency=exc.dependency)
        return problem(exc.status, exc.code, exc.detail, dependency=exc.dependency)
    if isinstance(exc, OSError | TimeoutError):
        log.warning("credits_dependency_failed", step=step, error=type(exc).__name__)
        return problem(503, "credits_unavailable", f"the credit ledger failed: {type(exc).__name__}")
    log.exception("credits_internal_error", step=step)
    return problem(500, "internal_error", f"credit {step} failed unexpectedly")


def _headers(response: web.StreamResponse, balance: int, charged: int) -> None:
    if response.prepared:  # a streamed body already left with its headers
        return
    response.headers[CREDITS_REMAINING] = str(balance)
    response.headers[CREDITS_CHARGED] = str(charged)
    have = response.headers.get("Access-Control-Expose-Headers")
    names = f"{CREDITS_REMAINING}, {CREDITS_CHARGED}"
    response.headers["Access-Control-Expose-Headers"] = f"{have}, {names}" if have else names


async def serve(
    config: CreditConfig, request: web.Request, handler: Handler, price: CreditPrice, fallback: Fallback | None
) -> web.StreamResponse:
    """One request of a credit route: burn (a hold), run the handler, capture on an answer, refund on failure;
    ``fallback`` (the x402 path) when the customer cannot pay in credits and the route allows it."""
    try:
        customer = await config.customer(request)
    except Exception as exc:
        return _failed("customer", exc)
    if customer is None:
        if fallback is not None:
            return await fallback()
        return problem(
            401, "customer_credential_required", "this route is paid in credits: send your customer credential"
        )
    key = request_key(request)
    if isinstance(key, web.Response):
        return key
    try:
        charge = await config.ledger.charge(customer, key, price)
    except InsufficientCredits as exc:
        if fallback is not None:
            log.info("credits_fallback_to_x402", customer=customer, balance=exc.balance, needed=exc.needed)
            return await fallback()
        url = _topup(config, customer, request)
        detail = "the customer's credits do not cover this request" + (f"; top up at {url}" if url else "")
        resp = problem(402, "insufficient_credits", detail, balance=exc.balance, needed=exc.needed, topUpUrl=url)
        if url:
            resp.headers["Link"] = f'<{url}>; rel="payment"'
        return resp
    except Exception as exc:
        return _failed("charge", exc)
    request[CHARGE] = charge
    clog = log.bind(customer=customer, reference=charge.reference, path=request.path)
    try:
        response = await handler(request)
    except BaseException:
        if charge.new:
            await _refund(config, customer, charge, clog)
        raise
    if response.status >= config.refund_status and charge.new:
        clog.info("credits_refunded_handler_failed", status=response.status)
        balance = await _refund(config, customer, charge, clog)
        _headers(response, charge.balance if balance is None else balance, 0 if balance is not None else charge.credits)
        return response
    # the handler answered: the hold becomes final (also on a retry served on a standing burn: it is the answer)
    await _capture(config, customer, charge, clog)
    if price.meter is not None and charge.new and response.status < config.refund_status:
        try:
            await config.ledger.record_usage(customer, price.meter, price.units, f"credits:{charge.reference}")
        except Exception as exc:  # the request is served and paid; only the usage event is missing
            clog.warning("credits_usage_event_failed", error=type(exc).__name__)
    _headers(response, charge.balance, charge.credits)
    return response


async def _refund(config: CreditConfig, customer: str, charge: Charge, clog: Any) -> int | None:
    try:
        return await config.ledger.refund(customer, charge.key)
    except Exception as exc:
        # the charge stays held: the service's hold pass refunds it after the hold timeout
        clog.error("credits_refund_failed", error=type(exc).__name__)
        return None


async def _capture(config: CreditConfig, customer: str, charge: Charge, clog: Any) -> None:
    try:
        state = await config.ledger.capture(customer, charge.key)
    except Exception as exc:
        # the request is served; its charge stays held and the hold pass will give it back after the timeout
        clog.error("credits_capture_failed", error=type(exc).__name__)
        return
    if state != "captured":
        # the hold timeout passed before the handler answered: the hold pass refunded it, the request is free
        clog.warning("credits_capture_too_late", state=state)


__all__ = [
    "CHARGE",
    "CREDITS_CHARGED",
    "CREDITS_REMAINING",
    "MODES",
    "Charge",
    "CreditConfig",
    "CreditLedger",
    "CreditPrice",
    "CustomerResolver",
    "first_customer",
    "header_customer",
    "serve",
    "siwx_customer",
]
