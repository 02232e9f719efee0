"""The aiohttp paywall (provider path, docs/architecture.md): challenge, decode, match, verify, claim, serve, settle."""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import aiohttp
from aiohttp import web

from x402.cache import Cache, MemoryCache
from x402.errors import ConfigError, DependencyError, InvalidPaymentHeader, X402Error
from x402.facilitator.base import AnyPayload, AnyRequirements, Facilitator
from x402.logs import get_logger
from x402.paywall import credits as credits_lib
from x402.paywall import siwx as siwx_lib
from x402.paywall.challenge import PAYMENT_REQUIRED_ERROR, Challenge, ChallengeCache, challenge_headers
from x402.paywall.credits import CreditConfig
from x402.paywall.listing import RemoteRegistry, well_known_document
from x402.paywall.matching import match_v1, match_v2, payment_id, valid_before
from x402.paywall.metering import SETTLEMENT_OVERRIDES, SettlementOverrideError, settle_requirements
from x402.paywall.offers import Offer, PaidRoute, as_paid_route, check_identifier_mode, paid_route_of
from x402.paywall.replay import SETTLED, PaymentClaims
from x402.paywall.responses import attach_settlement, challenge_response, problem
from x402.paywall.siwx import SiwxConfig
from x402.wire import payment_identifier as pid_ext
from x402.wire import reasons
from x402.wire import siwx as siwx_wire
from x402.wire.codec import (
    MAX_HEADER_BYTES,
    PAYMENT_SIGNATURE,
    X_PAYMENT,
    decode_payment_signature,
    decode_x_payment,
    encode_header,
)
from x402.wire.models import PaymentPayload, PaymentRequirements, SettleResponse

log = get_logger("x402.paywall")
#: Bound on the per-request-line challenge cache (Host and path are client input).
_MAX_FAST: Final = 4096

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RouteKey = tuple[str, str]

#: ``error`` when a payment's ``accepted`` matches none of our offers (official text: "No matching payment
#: requirements"; we answer with the x402 reason code, like every other paywall error).
NO_MATCH: Final = reasons.INVALID_PAYMENT_REQUIREMENTS
#: ``error`` when a payment that was already used (or is in use) is presented again.
REPLAYED: Final = reasons.DUPLICATE_SETTLEMENT
_PERMIT2_ALLOWANCE: Final = "permit2_allowance_required"
_UNKNOWN: Final = object()


@dataclass(frozen=True, slots=True)
class VerifiedPayment:
    """What the handler of a paid route can read from ``request[PAYMENT]``: payer, requirements, risk assessment."""

    payment_id: str
    payer: str | None
    requirements: PaymentRequirements
    risk: dict[str, Any] | None


PAYMENT: web.RequestKey[VerifiedPayment] = web.RequestKey("x402_payment")
#: The address that signed in with Sign-In-With-X (instead of paying) on this request.
SIGNED_IN: web.RequestKey[str] = web.RequestKey("x402_signed_in")

#: Called with the app and the paywall once a paywall on that app has started (its paid routes are known).
StartHook = Callable[[web.Application, "Paywall"], Awaitable[None]]
#: Start-up subscribers of every paywall set up on an app, e.g. the service lists the paid routes in its registry;
#: a paywall built with ``register=False`` does not call them.
PAYWALL_STARTED: web.AppKey[list[StartHook]] = web.AppKey("x402_paywall_started", list)


class Paywall:
    """Charges for declared routes through a facilitator (in-process or ``RemoteFacilitator``).

    Declare routes with ``routes={("GET", "/path"): [Offer(...)]}`` (the path is the aiohttp route's canonical
    path, e.g. ``/items/{id}``; method ``*`` matches any) and/or the ``@paid(Offer(...))`` handler decorator, then
    ``paywall.setup(app)``.

    * ``versions``: which transports to speak: 2 = ``PAYMENT-REQUIRED`` / ``PAYMENT-SIGNATURE``, 1 = the JSON body
      ``{x402Version: 1, error, accepts}`` / ``X-PAYMENT``. The v1 ``accepts`` lists only offers whose network has
      a v1 name, unless ``v1_caip2_networks`` is set: then the others are listed with their CAIP-2 id (our
      extension; official v1 clients refuse such names, our client and facilitator accept them).
    * ``settle_before_handler``: settle first (the handler's failure is then the provider's problem, and the
      paid response gets ``Cache-Control: private``); by default the handler runs first and a response >= 400
      (or an exception) means no settlement.
    * ``error`` of a 402 is ``Payment required`` when nothing was paid, else a reason code: the codec's code for
      an undecodable header, ``invalid_payment_requirements`` when ``accepted`` matches no offer, the
      facilitator's ``invalidReason`` / ``errorReason``, or ``duplicate_settlement`` for a replayed payment.
    * ``payment_identifier``: declare the payment-identifier extension in every 402 (``"optional"`` or
      ``"required"``; a route's own ``PaidRoute.payment_identifier`` / ``@paid(payment_identifier=...)`` wins).
      A payment's id is bound to its purchase (method, resource URL, offer): another purchase under the same id
      is a 409 ``payment_identifier_conflict``, a missing required id a 400 ``payment_identifier_required``. A
      retry of a settled purchase under its id gets the original settlement (no second payment) and is served
      again.
    * Facilitator or cache trouble is a 503 problem+json (the dependency's code), anything unexpected a 500;
      never an empty 402. CORS preflights are not answered here (use aiohttp-cors and allow ``PAYMENT-SIGNATURE``
      and ``X-PAYMENT``); the x402 response headers are listed in ``Access-Control-Expose-Headers``.
    * ``register``: at start-up, call the app's ``PAYWALL_STARTED`` subscribers with the paid routes (the service
      lists them in its registry for discovery), and list them in ``registry`` (a remote x402 registry's base URL,
      with ``registry_api_key``) when one is given; ``False`` opts out. Remote listing needs ``public_url``.
    * ``siwx``: offer Sign-In-With-X (``x402.paywall.siwx``): every 402 declares it with a fresh nonce, a payer
      who paid for the same purchase (method, path, query, price) signs in with ``SIGN-IN-WITH-X`` instead of
      paying; settlements record the entitlements; ``request[SIGNED_IN]`` is the address that signed in.
    * ``ownership_proofs``: the provider's payTo keys signing its origin (x402scan convention), published in the
      ``/.well-known/x402`` document ``setup(app, well_known=True)`` serves.
    * ``credits``: charge routes declared with ``PaidRoute(credits=CreditPrice(...))`` in prepaid credits through
      ``CreditConfig.ledger``, the customer named by ``CreditConfig.customer`` (``x402.paywall.credits``): mode
      ``credits`` only burns, ``credits-then-x402`` burns when the customer's credits cover the price and
      otherwise answers this route's normal 402.
    """

    def __init__(
        self,
        facilitator: Facilitator,
        *,
        routes: Mapping[RouteKey, PaidRoute | Offer | Sequence[Offer]] | None = None,
        cache: Cache | None = None,
        settle_before_handler: bool = False,
        versions: Collection[int] = (1, 2),
        v1_caip2_networks: bool = False,
        public_url: str | None = None,
        check_supported: bool = True,
        max_header_bytes: int = MAX_HEADER_BYTES,
        pending_retry_delay: float = 0.5,
        register: bool = True,
        payment_identifier: str | None = None,
        ownership_proofs: Sequence[str] = (),
        registry: str | None = None,
        registry_api_key: str | None = None,
        siwx: SiwxConfig | None = None,
        credits: CreditConfig | None = None,
    ) -> None:
        if not set(versions) <= {1, 2} or not versions:
            raise ConfigError("Paywall versions must be a non-empty subset of (1, 2)")
        check_identifier_mode(payment_identifier)
        self.facilitator = facilitator
        self.routes: dict[RouteKey, PaidRoute] = {
            (method.upper(), path): as_paid_route(value) for (method, path), value in (routes or {}).items()
        }
        self.claims = PaymentClaims(cache if cache is not None else MemoryCache())
        self.settle_before_handler = settle_before_handler
        self.versions = frozenset(versions)
        self.challenges = ChallengeCache(
            versions=self.versions, v1_caip2=v1_caip2_networks, payment_identifier=payment_identifier
        )
        self.public_url = public_url.rstrip("/") if public_url else None
        self.check_supported = check_supported
        self.max_header_bytes = max_header_bytes
        self.pending_retry_delay = pending_retry_delay
        self.register = register
        self.ownership_proofs = tuple(ownership_proofs)
        self.siwx = siwx
        self.credits = credits
        self.registry = RemoteRegistry(registry, api_key=registry_api_key) if registry else None
        self._paid_routes: list[tuple[RouteKey, PaidRoute]] = []
        self._started_facilitator = False
        self._by_route: dict[object, PaidRoute | None] = {}
        self._by_request: dict[tuple[int, str | None, str, bool], Challenge] = {}
        self._reads_v2 = 2 in self.versions
        self._reads_v1 = 1 in self.versions
        self._siwx_templates: dict[tuple[int, str], tuple[Challenge, siwx_lib.ChallengeTemplate]] = {}

    # ------------------------------------------------------------------------------------ set-up

    def setup(self, app: web.Application, *, wrap_handlers: bool = True, well_known: bool = False) -> None:
        """Protect ``app``'s paid routes and add a start-up context (checks offers against the facilitator).

        By default each paid route's handler is wrapped once at start-up, so free routes cost nothing and paid
        ones skip aiohttp's per-request middleware chain (a measured ~12 % of the 402 path). With
        ``wrap_handlers=False`` (e.g. for routes of sub-applications) a middleware does the same per request.
        ``well_known=True`` also serves ``GET /.well-known/x402`` listing the paid routes and ownership proofs.
        """
        if well_known:
            app.router.add_get("/.well-known/x402", self.well_known)
        if not wrap_handlers:
            app.middlewares.append(self.middleware)
        app.cleanup_ctx.append(functools.partial(self._ctx, wrap=wrap_handlers))

    def _wrap_routes(self, app: web.Application) -> int:
        """Replace the handler of every paid route of ``app`` with one that runs the paywall first."""
        wrapped = 0
        for route in app.router.routes():
            resource = route.resource
            if resource is None or getattr(route.handler, "__x402_paywall__", None) is self:
                continue
            paid_route = paid_route_of(route.handler) or self.routes.get((route.method, resource.canonical))
            if paid_route is None:
                paid_route = self.routes.get(("*", resource.canonical))
            if paid_route is None:
                continue
            if isinstance(route.handler, type):  # a class-based view: it cannot be wrapped as a function
                raise ConfigError(f"{route.method} {resource.canonical}: use Paywall.setup(app, wrap_handlers=False)")
            # aiohttp has no public way to swap a frozen route's handler; this attribute is its only home
            route._handler = self._protect(route.handler, paid_route)  # type: ignore[assignment]
            wrapped += 1
        return wrapped

    def _protect(self, handler: Handler, paid_route: PaidRoute) -> Handler:
        async def protected(request: web.Request) -> web.StreamResponse:
            return await self._serve(request, handler, paid_route)

        # keep the handler's identity and its @paid declaration: start() reads it from the wrapped route
        functools.update_wrapper(protected, handler)
        protected.__x402_paywall__ = self  # type: ignore[attr-defined]
        return protected

    async def _ctx(self, app: web.Application, *, wrap: bool = True) -> AsyncIterator[None]:
        if wrap:
            self._wrap_routes(app)
        await self.start(app)
        await self.announce(app)
        yield
        await self.close()

    async def announce(self, app: web.Application) -> None:
        """After ``start``: call the app's ``PAYWALL_STARTED`` subscribers and list the routes in ``registry``."""
        if not self.register:
            return
        for hook in app.get(PAYWALL_STARTED, ()):
            await hook(app, self)
        if self.registry is not None:
            if self.public_url:
                await self.registry.register(self, self.public_url)
            else:
                log.warning("paywall_registry_skipped", detail="listing in a remote registry needs public_url")

    async def well_known(self, request: web.Request) -> web.Response:
        """``GET /.well-known/x402``: this paywall's paid routes and the provider's ownership proofs."""
        base = self.public_url or f"{request.scheme}://{request.host}"
        return web.json_response(well_known_document(self, base))

    async def start(self, app: web.Application | None = None) -> None:
        """Start a remote facilitator, and fail closed on offers its ``/supported`` does not list."""
        from x402.facilitator.remote import RemoteFacilitator

        if isinstance(self.facilitator, RemoteFacilitator) and not self.facilitator.started:
            await self.facilitator.start()
            self._started_facilitator = True
        paid_routes = list(self.routes.items())
        if app is not None:
            seen = set(self.routes)
            for app_route in app.router.routes():
                declared = paid_route_of(app_route.handler)
                # aiohttp adds a HEAD route beside each GET: same handler, not a resource of its own
                if declared is None or app_route.resource is None or app_route.method == "HEAD":
                    continue
                key = (app_route.method, app_route.resource.canonical)
                if key not in seen:
                    seen.add(key)
                    paid_routes.append((key, declared))
        for (method, path), route in paid_routes:
            if route.credits is not None and self.credits is None:
                raise ConfigError(f"{method} {path} is priced in credits: give the Paywall credits=CreditConfig(...)")
        # a credits-only route sells no single request: it is not listed, checked against /supported or challenged
        paid_routes = [(key, route) for key, route in paid_routes if route.offers]
        if self.check_supported and paid_routes:
            supported = await self.facilitator.supported()
            kinds = {(k.x402_version, k.scheme, k.network) for k in supported.kinds}
            # e.g. Solana offers need the facilitator's feePayer in extra, as official servers fill it in
            self.challenges.set_kind_extra(
                {
                    (k.scheme, k.network): k.extra
                    for k in supported.kinds
                    if k.x402_version == 2 and isinstance(k.extra, dict)
                }
            )
            for (method, path), route in paid_routes:
                for offer in route.offers:
                    if (2, offer.scheme, offer.network) not in kinds:
                        raise ConfigError(
                            f"{method} {path}: the facilitator does not support {offer.scheme} on {offer.network} "
                            f"(its /supported lists {sorted(f'{k[1]}@{k[2]} v{k[0]}' for k in kinds)})"
                        )
        if self.public_url:
            for (_, path), route in paid_routes:
                if "{" not in path:
                    self.challenges.get(route, self.public_url + path)
        self._paid_routes = paid_routes
        log.info("paywall_started", routes=[f"{m} {p}" for (m, p), _ in paid_routes], versions=sorted(self.versions))

    async def close(self) -> None:
        """Close a remote facilitator this paywall started."""
        if self._started_facilitator:
            from x402.facilitator.remote import RemoteFacilitator

            if isinstance(self.facilitator, RemoteFacilitator):
                await self.facilitator.close()
            self._started_facilitator = False

    # ------------------------------------------------------------------------------- per request

    @property
    def paid_routes(self) -> list[tuple[RouteKey, PaidRoute]]:
        """Every paid route found at start-up, declared or ``@paid``, as ((method, path), route)."""
        return list(self._paid_routes)

    def route_for(self, request: web.Request) -> PaidRoute | None:
        """The paid route a request hit, if any (memoised per aiohttp route: this runs on every request)."""
        route = request.match_info.route
        hit = self._by_route.get(route, _UNKNOWN)
        if hit is not _UNKNOWN:
            return hit  # type: ignore[return-value]
        found = paid_route_of(request.match_info.handler)
        resource = route.resource
        if found is None and resource is not None and self.routes:
            path = resource.canonical
            found = self.routes.get((request.method, path)) or self.routes.get(("*", path))
        if resource is not None:  # system routes (404/405) are built per request: never keep them
            self._by_route[route] = found
        return found

    def _url(self, request: web.Request) -> str:
        if self.public_url:
            return self.public_url + request.path
        return f"{request.scheme}://{request.host}{request.path}"

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """aiohttp middleware: free routes pass through; paid routes need a payment."""
        if getattr(handler, "__x402_paywall__", None) is self:  # already protected by a wrapped handler
            return await handler(request)
        route = self.route_for(request)
        if route is None:
            return await handler(request)
        return await self._serve(request, handler, route)

    async def _serve(self, request: web.Request, handler: Handler, route: PaidRoute) -> web.StreamResponse:
        """The paywall for one request of a paid route: credits, or challenge, or verify -> handler -> settle."""
        price = route.credits
        if price is not None and self.credits is not None:
            if price.mode == "credits":
                return await credits_lib.serve(self.credits, request, handler, price, None)
            paying = (self._reads_v2 and PAYMENT_SIGNATURE in request.headers) or (
                self._reads_v1 and X_PAYMENT in request.headers
            )
            if not paying:  # a request that carries a payment is a payment, never a burn
                return await credits_lib.serve(
                    self.credits, request, handler, price, functools.partial(self._x402, request, handler, route)
                )
        return await self._x402(request, handler, route)

    async def _x402(self, request: web.Request, handler: Handler, route: PaidRoute) -> web.StreamResponse:
        """The x402 path of one request: challenge, or verify -> handler -> settle."""
        headers = request.headers
        v2 = headers.get(PAYMENT_SIGNATURE) if self._reads_v2 else None
        v1 = headers.get(X_PAYMENT) if self._reads_v1 else None
        # the unpaid request is the hot path: look its challenge up by the raw request line, no URL parsing
        key = (id(route), headers.get("Host"), request.raw_path, request.secure)
        challenge = self._by_request.get(key)
        if challenge is None:
            challenge = self.challenges.get(route, self._url(request))
            if len(self._by_request) < _MAX_FAST:
                self._by_request[key] = challenge
        if v2 is None and v1 is None:
            if self.siwx is not None and route.sign_in_seconds != 0:
                return await self._sign_in(request, handler, challenge, headers.get(siwx_wire.HEADER))
            return challenge_response(request, challenge, PAYMENT_REQUIRED_ERROR)
        return await self._with_payment(request, handler, challenge, v2, v1)

    # --------------------------------------------------------------------------- Sign-In-With-X

    def _siwx_challenge(self, request: web.Request, challenge: Challenge, error: str) -> web.Response:
        """A 402 like ``challenge_response``, its extensions carrying a fresh sign-in-with-x declaration."""
        assert self.siwx is not None
        header: str | None = None
        if 2 in challenge.versions:
            key = (id(challenge), error)
            cached = self._siwx_templates.get(key)
            if cached is None or cached[0] is not challenge:
                chains = siwx_lib.sign_in_chains([r.network for r in challenge.requirements])
                template = siwx_lib.ChallengeTemplate.build(
                    self.siwx, challenge.payment_required(error), challenge.extensions, chains
                )
                cached = (challenge, template)
                if len(self._siwx_templates) < _MAX_FAST:
                    self._siwx_templates[key] = cached
            header = cached[1].render()
        body = challenge.body if error == PAYMENT_REQUIRED_ERROR else challenge.encode(error)[1]
        return web.Response(status=402, body=body, headers=challenge_headers(header))

    def _purchase(self, request: web.Request, challenge: Challenge) -> str:
        version = siwx_lib.price_version(challenge.requirements)
        return siwx_lib.purchase_key(request.method, request.path, request.query_string, version)

    async def _sign_in(
        self, request: web.Request, handler: Handler, challenge: Challenge, header: str | None
    ) -> web.StreamResponse:
        """Serve a payer who signs in to a purchase it holds; else the 402 (with the refusal's reason code)."""
        config = self.siwx
        assert config is not None
        if header is None:
            return self._siwx_challenge(request, challenge, PAYMENT_REQUIRED_ERROR)
        try:
            payload = siwx_wire.decode_header(header)
            chains = siwx_lib.sign_in_chains([r.network for r in challenge.requirements])
            siwx_lib.check_message(payload, resource_url=challenge.resource.url, chains=chains, config=config)
            address = await siwx_lib.check_signature(payload, config)
            now = datetime.now(UTC)
            if not await config.store.has_entitlement(address, self._purchase(request, challenge), now):
                raise siwx_wire.SiwxRefused(siwx_wire.NO_ENTITLEMENT, "this address has not paid for this purchase")
            expires = siwx_wire.parse_time(payload.expiration_time) if payload.expiration_time else None
            if not await config.store.use_nonce(payload.nonce, expires or now + timedelta(seconds=config.max_age)):
                raise siwx_wire.SiwxRefused(siwx_wire.NONCE_REUSED, "this sign-in message was already used")
        except siwx_wire.SiwxRefused as refused:
            log.info("paywall_sign_in_refused", path=request.path, code=refused.code, detail=refused.detail)
            return self._siwx_challenge(request, challenge, refused.code)
        except DependencyError as exc:
            return self._facilitator_failed(log, "sign_in", exc)
        log.info("paywall_signed_in", path=request.path, address=address)
        request[SIGNED_IN] = address
        return await handler(request)

    async def _entitle(self, request: web.Request, challenge: Challenge, route: PaidRoute, payer: str) -> None:
        """Record that ``payer`` bought this purchase (after its settlement), for later sign-ins."""
        config = self.siwx
        if config is None or not payer or route.sign_in_seconds == 0:
            return
        seconds = route.sign_in_seconds if route.sign_in_seconds is not None else config.entitlement_seconds
        until = datetime.now(UTC) + timedelta(seconds=seconds)
        try:
            await config.store.record_entitlement(
                siwx_lib.normalize_address(payer), self._purchase(request, challenge), until
            )
        except DependencyError as exc:
            # the payment stands; only the later sign-in is lost
            log.warning("paywall_entitlement_failed", code=exc.code, dependency=exc.dependency)

    async def _with_payment(
        self, request: web.Request, handler: Handler, challenge: Challenge, v2: str | None, v1: str | None
    ) -> web.StreamResponse:
        header = v2 if v2 is not None else v1
        assert header is not None
        payload: AnyPayload
        try:
            payload = (
                decode_payment_signature(v2, max_bytes=self.max_header_bytes)
                if v2 is not None
                else decode_x_payment(header, max_bytes=self.max_header_bytes)
            )
        except InvalidPaymentHeader as exc:
            header_id = hashlib.sha256(header.encode("utf-8", "replace")).hexdigest()[:16]
            log.info("paywall_bad_header", path=request.path, code=exc.code, header_id=header_id, detail=exc.detail)
            return challenge_response(request, challenge, exc.code)

        index = (
            match_v2(challenge, payload.accepted)
            if isinstance(payload, PaymentPayload)
            else match_v1(challenge, payload)
        )
        if index is None:
            log.info("paywall_no_match", path=request.path, x402_version=payload.x402_version)
            return challenge_response(request, challenge, NO_MATCH)
        ours = challenge.requirements[index]
        requirements: AnyRequirements = ours
        if not isinstance(payload, PaymentPayload):
            v1_req = challenge.requirements_v1[index]
            assert v1_req is not None
            requirements = v1_req
        pid = payment_id(ours, payload.payload)
        plog = log.bind(payment_id=pid, path=request.path, x402_version=payload.x402_version, network=ours.network)
        identifier: str | None = None
        if challenge.identifier_mode is not None:
            checked = await self._identifier(request, challenge, payload, ours)
            if isinstance(checked, web.Response):
                return checked
            identifier = checked

        try:
            verified = await self.facilitator.verify(payload, requirements)
        except Exception as exc:
            return self._facilitator_failed(plog, "verify", exc)
        if not verified.is_valid:
            reason = verified.invalid_reason or reasons.INVALID_PAYLOAD
            plog.info("paywall_verify_invalid", reason=reason, payer=verified.payer or None)
            status = 412 if reason == _PERMIT2_ALLOWANCE else 402
            return challenge_response(request, challenge, reason, status=status)
        risk = verified.extensions.get("risk") if isinstance(verified.extensions, dict) else None
        request[PAYMENT] = VerifiedPayment(
            payment_id=pid,
            payer=verified.payer if isinstance(verified.payer, str) else None,
            requirements=ours,
            risk=risk if isinstance(risk, dict) else None,
        )
        if isinstance(risk, dict):
            plog = plog.bind(risk_level=risk.get("level"), risk_score=risk.get("score"))

        retried = False
        try:
            claimed = await self.claims.claim(pid, ours.max_timeout_seconds)
            if not claimed and identifier is not None:
                # the same purchase sent again under its id after it settled: an explicit retry, answered with the
                # original settlement by the facilitator (nothing is charged twice)
                state = await self.claims.state(pid)
                retried = state is not None and state.startswith(SETTLED)
        except DependencyError as exc:
            return self._facilitator_failed(plog, "claim", exc)
        if not claimed and not retried:
            plog.warning("paywall_replay_refused")
            return challenge_response(request, challenge, REPLAYED)

        run = _Run(self, request, handler, challenge, payload, requirements, pid, plog, owns_claim=claimed)
        try:
            return await (run.upfront() if self.settle_before_handler else run.after())
        except BaseException:
            await run.release()
            raise

    async def _identifier(
        self, request: web.Request, challenge: Challenge, payload: AnyPayload, ours: PaymentRequirements
    ) -> str | web.Response | None:
        """The payment's identifier bound to this purchase, or the 400 / 409 refusing it."""
        try:
            value, _ = pid_ext.extract(payload.extensions if isinstance(payload, PaymentPayload) else None)
        except pid_ext.InvalidPaymentIdentifier as exc:
            return problem(exc.status, exc.code, exc.detail)
        if value is None:
            if challenge.identifier_mode == "required":
                err = pid_ext.PaymentIdentifierRequired(
                    f'this resource requires extensions["{pid_ext.KEY}"].info.id (16-128 characters of [A-Za-z0-9_-])'
                )
                return problem(err.status, err.code, err.detail)
            return None
        fingerprint = pid_ext.fingerprint(
            tenant="",
            scheme=ours.scheme,
            network=ours.network,
            asset=ours.asset,
            amount=ours.amount,
            pay_to=ours.pay_to,
            resource=challenge.resource.url,
            method=request.method,
        )
        try:
            bound = await self.claims.bind_identifier(value, fingerprint)
        except DependencyError as exc:
            return self._facilitator_failed(log, "identifier", exc)
        if not bound:
            conflict = pid_ext.PaymentIdentifierConflict(
                "this payment identifier was already used for another purchase (method, resource or offer differ)"
            )
            return problem(conflict.status, conflict.code, conflict.detail)
        return value

    async def _release(self, pid: str) -> None:
        try:
            await self.claims.release(pid)
        except DependencyError:
            log.warning("paywall_release_failed", payment_id=pid)

    async def settle(self, payload: AnyPayload, requirements: AnyRequirements) -> SettleResponse:
        """Settle through the facilitator, retrying once on ``settlement_pending`` (as official servers do)."""
        result = await self.facilitator.settle(payload, requirements)
        if not result.success and result.error_reason == reasons.SETTLEMENT_PENDING:
            await asyncio.sleep(self.pending_retry_delay)
            result = await self.facilitator.settle(payload, requirements)
        return result

    @staticmethod
    def _facilitator_failed(plog: Any, step: str, exc: Exception) -> web.Response:
        """A broken dependency is a 503 with a body (never an empty 402); anything else a 500."""
        if isinstance(exc, X402Error) and 400 <= exc.status < 500:
            # the facilitator refused the request itself (e.g. payment-identifier 400 / 409): the payer's to fix
            plog.info("paywall_facilitator_refused", step=step, code=exc.code)
            return problem(exc.status, exc.code, exc.detail)
        if isinstance(exc, DependencyError):
            plog.warning("paywall_dependency_failed", step=step, code=exc.code, dependency=exc.dependency)
            return problem(exc.status, exc.code, exc.detail, dependency=exc.dependency)
        if isinstance(exc, aiohttp.ClientError | OSError | TimeoutError):
            plog.warning(
                "paywall_dependency_failed", step=step, code="facilitator_unavailable", error=type(exc).__name__
            )
            return problem(503, "facilitator_unavailable", f"the facilitator failed: {type(exc).__name__}")
        plog.exception("paywall_internal_error", step=step)
        return problem(500, "internal_error", f"payment {step} failed unexpectedly")


class _Run:
    """One paid request after verify and claim: runs the handler and settles in the configured order."""

    def __init__(
        self,
        paywall: Paywall,
        request: web.Request,
        handler: Handler,
        challenge: Challenge,
        payload: AnyPayload,
        requirements: AnyRequirements,
        pid: str,
        plog: Any,
        *,
        owns_claim: bool = True,
    ) -> None:
        self.paywall = paywall
        self.request = request
        self.handler = handler
        self.challenge = challenge
        self.payload = payload
        self.requirements = requirements
        self.pid = pid
        self.log = plog
        self.v1 = not isinstance(payload, PaymentPayload)
        #: True once money moved: the claim then stays, so the payment cannot buy a second handler run
        self.keep_claim = False
        #: False for an explicit retry of a settled purchase: the claim (settled marker) is not ours to release
        self.owns_claim = owns_claim

    async def release(self) -> None:
        """Give the payment's claim back when nothing was charged (and it is ours)."""
        if self.owns_claim and not self.keep_claim:
            await self.paywall._release(self.pid)

    async def _settle(self, requirements: AnyRequirements | None = None) -> SettleResponse | web.Response:
        try:
            result = await self.paywall.settle(self.payload, requirements or self.requirements)
        except Exception as exc:
            return Paywall._facilitator_failed(self.log, "settle", exc)
        if result.success:
            self.keep_claim = True
            try:
                await self.paywall.claims.settled(self.pid, result.transaction, valid_before(self.payload.payload))
            except DependencyError:
                # the claim itself still guards the payment until it expires
                self.log.warning("paywall_mark_settled_failed")
            self.log.info("paywall_settled", tx=result.transaction, payer=result.payer or None)
            if self.paywall.siwx is not None and isinstance(result.payer, str):
                await self.paywall._entitle(self.request, self.challenge, self.challenge.route, result.payer)
            return result
        self.log.info("paywall_settle_failed", reason=result.error_reason or None, tx=result.transaction or None)
        return challenge_response(
            self.request,
            self.challenge,
            result.error_reason or reasons.UNEXPECTED_SETTLE_ERROR,
            settlement=encode_header(result),
        )

    async def after(self) -> web.StreamResponse:
        """Default order: the handler first, settle only if it succeeded (``upto``: the amount it reports)."""
        response = await self.handler(self.request)
        override = response.headers.pop(SETTLEMENT_OVERRIDES, None)  # server-internal: never reaches the buyer
        if response.status >= 400:
            self.log.info("paywall_handler_failed", status=response.status)
            await self.release()
            return response
        if response.prepared:
            # a streamed body already left: settle anyway, but the receipt header can no longer be sent
            self.log.warning("paywall_streamed_before_settle")
        try:
            requirements = settle_requirements(self.requirements, override)
        except SettlementOverrideError as exc:
            self.log.error("paywall_bad_settlement_override", error=str(exc))
            await self.release()
            return problem(500, "invalid_settlement_override", str(exc))
        settled = await self._settle(requirements)
        if isinstance(settled, web.Response):
            await self.release()
            return settled
        attach_settlement(response, settled, v1=self.v1, upfront=False)
        return response

    async def upfront(self) -> web.StreamResponse:
        """``settle_before_handler``: settle first, then run the handler (its failure is then the provider's)."""
        settled = await self._settle()
        if isinstance(settled, web.Response):
            await self.release()
            return settled
        try:
            response = await self.handler(self.request)
        except Exception:
            self.log.error("paywall_handler_failed_after_settlement", tx=settled.transaction)
            raise
        if response.status >= 400:
            self.log.error("paywall_handler_failed_after_settlement", status=response.status, tx=settled.transaction)
        if response.headers.pop(SETTLEMENT_OVERRIDES, None) is not None:
            # settled before the handler ran (upto: the signed maximum): too late to charge less
            self.log.warning("paywall_settlement_override_ignored_upfront")
        attach_settlement(response, settled, v1=self.v1, upfront=True)
        return response


__all__ = ["NO_MATCH", "REPLAYED", "SIGNED_IN", "Paywall"]
