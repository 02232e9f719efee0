"""``X402Client``: an aiohttp request that pays a 402 challenge once, within a ``PaymentPolicy``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from x402.client.pending import PaymentPending, PaymentState, PendingPayment, StatusSource, purchase_key
from x402.client.policy import PaymentPolicy
from x402.client.signer import PaymentSigner
from x402.client.siwx import sign_in_header
from x402.errors import BadRequest, InvalidPaymentHeader, PaymentRefused
from x402.logs import get_logger
from x402.wire import jsonlimits, siwx
from x402.wire.codec import (
    PAYMENT_REQUIRED,
    PAYMENT_RESPONSE,
    PAYMENT_SIGNATURE,
    X_PAYMENT,
    X_PAYMENT_RESPONSE,
    decode_payment_required,
    decode_payment_response,
    encode_header,
)
from x402.wire.models import (
    PaymentPayload,
    PaymentPayloadV1,
    PaymentRequiredV1,
    PaymentRequirements,
    PaymentRequirementsV1,
    ResourceInfo,
    SettleResponse,
    decode_json,
    peek_x402_version,
    requirements_to_v2,
)
from x402.wire.payment_identifier import declared as declares_payment_id
from x402.wire.payment_identifier import new_id as new_payment_id
from x402.wire.payment_identifier import with_id as with_payment_id

log = get_logger("x402.client")


@dataclass(slots=True)
class PaidResponse:
    """The final HTTP response, plus what was paid and the settlement receipt (if the server sent one)."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str
    settlement: SettleResponse | None = None
    #: the offer that was paid (v2 shape), None when nothing was paid
    paid: PaymentRequirements | None = None
    x402_version: int | None = None
    payer: str | None = None
    refusals: list[str] = field(default_factory=list)
    #: set when a payment went out and no success receipt came back: it may have settled (see ``X402Client.check``)
    pending: PendingPayment | None = None
    #: the payment-identifier id sent (when the server declared the extension); pass it again to retry the purchase
    payment_id: str | None = None
    #: the address that signed in (Sign-In-With-X) instead of paying
    signed_in: str | None = None

    def text(self) -> str:
        """The body as UTF-8 text."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON (bounded in depth); raises ``BadRequest`` ``invalid_json`` / ``json_too_deep``."""
        return jsonlimits.loads(self.body)


@dataclass(frozen=True, slots=True)
class Challenge402:
    """A decoded 402: offers in v2 shape (v1 entries converted) and what to echo back."""

    x402_version: int
    offers: list[PaymentRequirements]
    v1_offers: list[PaymentRequirementsV1]
    resource: ResourceInfo | None = None
    extensions: dict[str, Any] | None = None


def payment_header(
    challenge: Challenge402, index: int, scheme_payload: dict[str, Any], *, payment_id: str | None = None
) -> tuple[str, str]:
    """(header name, value) paying offer ``index`` of a challenge: ``PAYMENT-SIGNATURE`` for v2, ``X-PAYMENT`` for v1.

    v2 echoes the chosen requirements unchanged as ``accepted`` plus the challenge's resource and extensions, with
    ``payment_id`` as the payment-identifier id when the challenge declares that extension.
    """
    if challenge.x402_version == 2:
        payload = PaymentPayload(accepted=challenge.offers[index], payload=scheme_payload)
        if challenge.resource is not None:
            payload.resource = challenge.resource
        extensions = with_payment_id(challenge.extensions, payment_id) if payment_id else challenge.extensions
        if extensions:
            payload.extensions = extensions
        return PAYMENT_SIGNATURE, encode_header(payload)
    v1 = challenge.v1_offers[index]
    return X_PAYMENT, encode_header(PaymentPayloadV1(scheme=v1.scheme, network=v1.network, payload=scheme_payload))


def parse_challenge(headers: CIMultiDictProxy[str], body: bytes) -> Challenge402:
    """Read a 402: the ``PAYMENT-REQUIRED`` header first, else the body when its ``x402Version`` is 1."""
    header = headers.get(PAYMENT_REQUIRED)
    header_error: InvalidPaymentHeader | None = None
    if header:
        try:
            required = decode_payment_required(header)
        except InvalidPaymentHeader as exc:
            header_error = exc
        else:
            return Challenge402(
                x402_version=2,
                offers=list(required.accepts),
                v1_offers=[],
                resource=required.resource if isinstance(required.resource, ResourceInfo) else None,
                extensions=required.extensions if isinstance(required.extensions, dict) else None,
            )
    try:
        if body and peek_x402_version(body) == 1:
            v1 = decode_json(body, PaymentRequiredV1)
            offers: list[PaymentRequirements] = []
            kept: list[PaymentRequirementsV1] = []
            for req in v1.accepts:
                try:
                    offers.append(requirements_to_v2(req))
                except BadRequest:
                    continue  # a network we cannot name in CAIP-2 cannot be signed for either
                kept.append(req)
            return Challenge402(x402_version=1, offers=offers, v1_offers=kept)
    except BadRequest:
        pass
    detail = (
        f"invalid PAYMENT-REQUIRED header: {header_error.detail}" if header_error else "the 402 has no x402 challenge"
    )
    raise PaymentRefused(detail, code="invalid_payment_required")


class X402Client:
    """Pays x402 challenges for a Python agent: one retry with a payment header, never two payments per request.

    A payment sent without a success receipt back (a 5xx, a new 402, ...) may still have settled: the response
    carries it as ``pending`` (no response at all, as on a timeout or reset, raises ``PaymentPending``), and the
    client signs nothing more for the same purchase (method, URL, body): it raises ``PaymentPending`` until
    ``check`` shows the chain settled or voided it, or the caller ``forget``s it.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        signers: Sequence[PaymentSigner],
        policy: PaymentPolicy | None = None,
        *,
        status: StatusSource | None = None,
        sign_in: str = "auto",
    ) -> None:
        if sign_in not in ("auto", "always", "never"):
            raise ValueError('sign_in is "auto", "always" or "never"')
        #: Sign-In-With-X when a 402 offers it: "auto" for purchases this client paid (same key), "always" (it
        #: paid in an earlier life), "never"
        self.sign_in = sign_in
        self._paid: set[str] = set()
        self.session = session
        self.signers = list(signers)
        self.policy = policy or PaymentPolicy()
        self.status = status
        self._pending: dict[str, PendingPayment] = {}

    @property
    def pending(self) -> list[PendingPayment]:
        """Payments sent without a receipt, not yet resolved."""
        return list(self._pending.values())

    async def check(self, pending: PendingPayment) -> PaymentState:
        """Ask the chain (``status=`` source); a settled or void payment stops blocking its purchase."""
        if self.status is None:
            raise PaymentRefused("no status source: pass X402Client(..., status=adapter)", code="no_status_source")
        answer = await self.status.payment_status(pending.network, pending.payload, pending.offer)
        if answer.state in ("settled", "void"):
            self._pending.pop(pending.purchase, None)
        return answer

    def forget(self, pending: PendingPayment) -> None:
        """The caller takes responsibility: the purchase may be paid again."""
        self._pending.pop(pending.purchase, None)

    async def get(self, url: str, **kw: Any) -> PaidResponse:
        """``request("GET", url, ...)``."""
        return await self.request("GET", url, **kw)

    async def post(self, url: str, **kw: Any) -> PaidResponse:
        """``request("POST", url, ...)``."""
        return await self.request("POST", url, **kw)

    async def request(self, method: str, url: str, *, payment_id: str | None = None, **kw: Any) -> PaidResponse:
        """Send a request; on a 402 pay one acceptable offer and retry once (raises PaymentRefused, PaymentPending).

        Request bodies must be re-sendable (bytes, str, ``json=``), since a paid request is sent twice. When the
        402 declares payment-identifier, an id is sent (``payment_id``, else a fresh one) and returned as
        ``PaidResponse.payment_id``: pass it again to retry the same purchase without paying twice.
        """
        headers: CIMultiDict[str] = CIMultiDict(kw.pop("headers", None) or {})
        purchase = purchase_key(method, url, kw)
        earlier = self._pending.get(purchase)
        if earlier is not None:
            raise PaymentPending(
                "an earlier payment for this purchase got no receipt and may have settled; "
                "check() it (or forget() it) before paying again",
                earlier,
            )
        first = await self._send(method, url, headers, kw)
        if first.status != 402 or PAYMENT_SIGNATURE in headers or X_PAYMENT in headers:
            return first  # not a challenge, or the caller paid by hand: never pay on top
        challenge = parse_challenge(first.headers, first.body)
        if self.sign_in == "always" or (self.sign_in == "auto" and purchase in self._paid):
            signed = await self._sign_in(method, url, headers, kw, challenge)
            if signed is not None:
                if signed.status != 402:
                    return signed
                challenge = parse_challenge(signed.headers, signed.body)  # refused: pay this fresh challenge
        choice = self.policy.choose(challenge.offers, self.signers)
        if isinstance(choice, list):
            log.info("payment_refused", url=url, reasons=choice)
            raise PaymentRefused("no acceptable offer: " + "; ".join(choice), refusals=choice)
        index, signer = choice
        offer = challenge.offers[index]
        scheme_payload = await signer.create_payload(offer, challenge.x402_version)
        sent_id = (payment_id or new_payment_id()) if declares_payment_id(challenge.extensions) else None
        name, value = payment_header(challenge, index, scheme_payload, payment_id=sent_id)
        headers[name] = value
        log.info("paying", url=url, network=offer.network, amount=offer.amount, x402_version=challenge.x402_version)
        sent = PendingPayment(
            purchase,
            method.upper(),
            url,
            offer,
            challenge.x402_version,
            scheme_payload,
            (name, value),
            signer.address,
            reason="",
        )
        try:
            second = await self._send(method, url, headers, kw)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # the header went out: the server may have settled before the answer was lost
            raise self._ambiguous(sent, f"no answer: {type(exc).__name__}", None, None) from None
        second.paid = offer
        second.x402_version = challenge.x402_version
        second.payer = signer.address
        second.settlement = _settlement(second.headers)
        second.payment_id = sent_id
        if second.settlement is not None and second.settlement.success:
            self._paid.add(purchase)
            return second
        if second.settlement is None and 200 <= second.status < 300:
            return second  # the resource was delivered; the server just sent no receipt
        why = (
            second.settlement.error_reason
            if second.settlement is not None and second.settlement.error_reason
            else f"HTTP {second.status} without a settlement receipt"
        )
        second.pending = self._ambiguous(sent, str(why), second.status, second).pending
        return second

    async def _sign_in(
        self, method: str, url: str, headers: CIMultiDict[str], kw: dict[str, Any], challenge: Challenge402
    ) -> PaidResponse | None:
        """Send the request signed in (when the 402 offers Sign-In-With-X and a signer can sign); None otherwise."""
        signed = sign_in_header(challenge.extensions, self.signers)
        if signed is None:
            return None
        value, address = signed
        answer = await self._send(method, url, CIMultiDict({**headers, siwx.HEADER: value}), kw)
        if answer.status == 402:
            log.info("sign_in_refused", url=url, address=address, reason=_error_of(answer))
            return answer
        log.info("signed_in", url=url, address=address, status=answer.status)
        answer.signed_in = address
        return answer

    def _ambiguous(
        self, sent: PendingPayment, reason: str, status: int | None, resp: PaidResponse | None
    ) -> PaymentPending:
        pending = PendingPayment(
            sent.purchase,
            sent.method,
            sent.url,
            sent.offer,
            sent.x402_version,
            sent.payload,
            sent.header,
            sent.payer,
            reason,
            status,
        )
        self._pending[pending.purchase] = pending
        log.warning("payment_pending", url=sent.url, network=sent.network, nonce=pending.nonce, reason=reason)
        return PaymentPending(f"the payment went out but its outcome is unknown ({reason})", pending, resp)

    async def _send(self, method: str, url: str, headers: CIMultiDict[str], kw: dict[str, Any]) -> PaidResponse:
        async with self.session.request(method, url, headers=headers, **kw) as resp:
            body = await resp.read()
            return PaidResponse(status=resp.status, headers=resp.headers, body=body, url=str(resp.url))


def _error_of(resp: PaidResponse) -> str | None:
    try:
        return parse_error(resp.headers)
    except InvalidPaymentHeader:
        return None


def parse_error(headers: CIMultiDictProxy[str]) -> str | None:
    """The ``error`` of a v2 402's ``PAYMENT-REQUIRED`` header."""
    value = headers.get(PAYMENT_REQUIRED)
    if not value:
        return None
    error = decode_payment_required(value).error
    return error if isinstance(error, str) else None


def _settlement(headers: CIMultiDictProxy[str]) -> SettleResponse | None:
    value = headers.get(PAYMENT_RESPONSE) or headers.get(X_PAYMENT_RESPONSE)
    if not value:
        return None
    try:
        return decode_payment_response(value)
    except InvalidPaymentHeader as exc:
        log.warning("unreadable_payment_response", code=exc.code)
        return None
