"""Agent pay (the agent path in docs/architecture.md): fetch, 402, offer within policy, reserve, sign, retry, commit."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import msgspec

from chains.base import PaymentStatus
from chains.keys import KeyKind, KeyKinds
from wallets import errors, keys
from wallets.approvals import Approvals
from wallets.custody import Keyring
from wallets.ledger import Ledger, Reservation, budget_json, payment_json, proof_json, usage
from wallets.outbound import MAX_REDIRECTS, Failed, Fetched, Fetcher, Stream, failure_code
from wallets.store import Wallet, WalletStore
from x402.client import parse_challenge, signer_for
from x402.client.client import Challenge402, payment_header
from x402.client.signer import PaymentSigner
from x402.client.siwx import sign_in_header
from x402.errors import BadRequest, InvalidPaymentHeader, PaymentRefused, X402Error
from x402.logs import get_logger
from x402.wire import siwx
from x402.wire.codec import (
    PAYMENT_REQUIRED,
    PAYMENT_RESPONSE,
    X_PAYMENT_RESPONSE,
    decode_payment_required,
    decode_payment_response,
)
from x402.wire.models import PaymentRequirements, SettleResponse, parse_amount
from x402.wire.networks import is_evm
from x402.wire.payment_identifier import declared, derived_id, new_id

log = get_logger("wallets.payer")

METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
#: Caller headers dropped: the payment headers are ours to set (a caller-made payment would bypass the ledger).
CALLER_DROPPED: Final = frozenset({"payment-signature", "x-payment"})
#: Extra time a reservation is held beyond the offer's own validity (the authorization cannot settle later).
HOLD_GRACE: Final = 30.0


@dataclass(frozen=True, slots=True)
class Listed:
    """One offer of a registry listing a routed call is pinned to: the live 402 may ask at most ``amount``."""

    network: str
    asset: str
    pay_to: str
    amount: int

    def covers(self, offer: PaymentRequirements) -> bool:
        """Same network, asset and payee (EVM addresses compared case-insensitively)."""
        if offer.network != self.network:
            return False
        if is_evm(offer.network):
            return offer.asset.lower() == self.asset.lower() and offer.pay_to.lower() == self.pay_to.lower()
        return offer.asset == self.asset and offer.pay_to == self.pay_to


def pinned_refusal(
    listed: tuple[Listed, ...], offer: PaymentRequirements, amount: int
) -> errors.PolicyViolation | None:
    """``price_above_listing`` unless a listed offer has the same terms at a price of at least ``amount``."""
    same = [entry for entry in listed if entry.covers(offer)]
    if not same:
        return errors.PriceAboveListing(
            f"the live 402 offers {offer.network} {offer.asset} to {offer.pay_to}, which the listing does not list",
            network=offer.network,
            payTo=offer.pay_to,
        )
    cap = max(entry.amount for entry in same)
    if amount > cap:
        return errors.PriceAboveListing(
            f"the live 402 asks {amount}, above the listed price {cap}", amount=str(amount), listed=str(cap)
        )
    return None


@dataclass(frozen=True, slots=True)
class PayRequest:
    """What the agent asks for: one HTTP request, paid if it answers 402."""

    url: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    max_amount: int | None = None
    approval_id: uuid.UUID | None = None
    #: a routed call (POST /v1/call): the listing's offers the live 402 is pinned to, and the resource's trust
    listed: tuple[Listed, ...] | None = None
    resource_trust: int | None = None
    #: stream the paid answer (a routed call): once the paid retry's headers carry a settled receipt, the payment is
    #: committed and the result's ``stream`` holds the open answer (the ledger keeps its status and headers only)
    stream: bool = False

    @classmethod
    def from_json(cls, doc: Any) -> PayRequest:
        """Parse ``{url, method?, headers?, body?, bodyBase64?, maxAmount?, approvalId?}``; raises BadRequest."""
        if not isinstance(doc, dict):
            raise BadRequest("expected a JSON object", code="invalid_pay_request")
        url = doc.get("url")
        if not isinstance(url, str) or not url:
            raise BadRequest("url is required", code="invalid_pay_request")
        method = str(doc.get("method") or "GET").upper()
        if method not in METHODS:
            raise BadRequest(f"method must be one of {sorted(METHODS)}", code="invalid_pay_request")
        headers = doc.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise BadRequest("headers must be an object of strings", code="invalid_pay_request")
        body: bytes | None = None
        if doc.get("bodyBase64") is not None:
            try:
                body = base64.b64decode(str(doc["bodyBase64"]), validate=True)
            except ValueError:
                raise BadRequest("bodyBase64 is not base64", code="invalid_pay_request") from None
        elif doc.get("body") is not None:
            raw = doc["body"]
            body = raw.encode() if isinstance(raw, str) else msgspec.json.encode(raw)
        max_amount = None
        if doc.get("maxAmount") is not None:
            max_amount = parse_amount(doc["maxAmount"])  # a canonical decimal string, like every amount
        approval_id = None
        if doc.get("approvalId") is not None:
            try:
                approval_id = uuid.UUID(str(doc["approvalId"]))
            except ValueError:
                raise BadRequest("approvalId is not a UUID", code="invalid_pay_request") from None
        kept = {k: v for k, v in headers.items() if k.lower() not in CALLER_DROPPED}
        return cls(url, method, kept, body, max_amount, approval_id)


def _storable(text: str) -> str:
    # aiohttp keeps undecodable header bytes as lone surrogates; neither they nor NUL can go into Postgres jsonb
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace").replace("\x00", "\ufffd")


def body_json(body: bytes) -> dict[str, str]:
    """A body as stored: text (UTF-8) or base64."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text:  # Postgres refuses NUL in jsonb text: such bodies go as base64
        return {"body": text, "bodyEncoding": "text"}
    return {"body": base64.b64encode(body).decode("ascii"), "bodyEncoding": "base64"}


def response_json(resp: Fetched) -> dict[str, Any]:
    """The upstream answer: status, headers, body as text (UTF-8) or base64."""
    return {
        "status": resp.status,
        "headers": {k: _storable(v) for k, v in resp.headers.items()},
        **body_json(resp.body),
    }


def head_json(resp: Fetched) -> dict[str, Any]:
    """A streamed upstream answer as kept: status and headers (its body went to the caller, not into the ledger)."""
    return {
        "status": resp.status,
        "headers": {k: _storable(v) for k, v in resp.headers.items()},
        "streamed": True,
    }


async def read_whole(stream: Stream) -> Fetched:
    """The answer with its body read in full (within the limits), the connection released."""
    try:
        return stream.fetched(await stream.read())
    except Failed as exc:
        raise errors.UpstreamFailed(exc.detail, code=failure_code(exc)) from None
    finally:
        stream.close()


def purchase_of(req: PayRequest) -> bytes:
    """What makes two calls the same purchase: method, URL and body (headers vary per call and are ignored)."""
    h = hashlib.sha256()
    h.update(req.method.encode() + b"\n" + req.url.encode() + b"\n")
    h.update(req.body or b"")
    return h.digest()


def settlement_of(resp: Fetched) -> SettleResponse | None:
    """The PAYMENT-RESPONSE (or v1 X-PAYMENT-RESPONSE) receipt, if readable."""
    value = resp.headers.get(PAYMENT_RESPONSE) or resp.headers.get(X_PAYMENT_RESPONSE)
    if not value:
        return None
    try:
        return decode_payment_response(value)
    except InvalidPaymentHeader:
        return None


def _refusal_of(resp: Fetched) -> str:
    """Why the upstream did not take the payment: the ``error`` of its new 402, else its status."""
    header = resp.headers.get(PAYMENT_REQUIRED)
    if resp.status == 402 and header:
        try:
            error = decode_payment_required(header).error
        except InvalidPaymentHeader:
            error = None
        if isinstance(error, str):
            return f"upstream refused the payment: {error}"
    return f"upstream answered {resp.status} without a settlement receipt"


class PayeeScreen(Protocol):
    """Screens who a wallet is about to pay; returns why it must not (e.g. a sanctioned payTo) or None."""

    async def __call__(
        self, wallet: Wallet, offer: PaymentRequirements, amount: int, url: str, payer: str
    ) -> str | None:
        """The refusal message, or None when the payee may be paid (``payer``: the wallet's address there)."""
        ...


class TrustLookup(Protocol):
    """The trust score (0..100) of the listed resource at a URL, or None when it has none."""

    async def __call__(self, url: str, method: str) -> int | None:
        """The score."""
        ...


class StatusLookup(Protocol):
    """Asks the chain about a sent payment (its stored proof); None when no adapter serves the network."""

    async def __call__(self, proof: Mapping[str, Any]) -> PaymentStatus | None:
        """The chain's answer; raises for RPC trouble."""
        ...


class WalletPayer:
    """Pays for HTTP requests from a wallet within its policy and budget."""

    def __init__(
        self,
        store: WalletStore,
        ledger: Ledger,
        approvals: Approvals,
        fetcher: Fetcher,
        keyring: Keyring,
        *,
        kinds: KeyKinds | None = None,
        screen: PayeeScreen | None = None,
        status: StatusLookup | None = None,
        trust: TrustLookup | None = None,
    ) -> None:
        self.status = status
        self.trust = trust
        self.store = store
        self.ledger = ledger
        self.approvals = approvals
        self.fetcher = fetcher
        self.keyring = keyring
        self.kinds = kinds or keys.builtin_kinds()
        self.screen = screen

    async def pay(self, wallet: Wallet, req: PayRequest, idempotency_key: str | None = None) -> dict[str, Any]:
        """Run the request, paying at most once; the answer holds the upstream response, receipt and budget."""
        if wallet.status != "active":
            raise errors.WalletPaused(f"the wallet is paused ({wallet.paused_reason})", reason=wallet.paused_reason)
        wallet.policy.check_active()
        wallet.policy.check_url(req.url)
        if wallet.policy.min_resource_trust is not None:
            trust = req.resource_trust
            if req.listed is None:
                trust = await self.trust(req.url, req.method) if self.trust is not None else None
            wallet.policy.check_trust(req.url, trust)
        if idempotency_key is not None:
            replay = await self._replay(wallet, idempotency_key)
            if replay is not None:
                return replay
        else:
            in_flight = self.fetcher.timeout * (MAX_REDIRECTS + 1) + HOLD_GRACE
            pending = await self.ledger.pending_purchase(wallet.id, purchase_of(req), in_flight)
            if pending is not None:
                raise errors.PurchasePending(
                    "a payment for this same request is pending; it is not paid again until the chain settles "
                    "or voids it (send an Idempotency-Key to make a distinct purchase)",
                    payment=payment_json(pending),
                    paymentId=str(pending["id"]),
                )
        first = await self.fetcher.fetch(req.method, req.url, req.headers, req.body)
        if first.status != 402:
            return {"upstream": response_json(first), "payment": {"paid": False}, "budget": await self._budget(wallet)}
        try:
            challenge = parse_challenge(first.headers, first.body)
        except PaymentRefused as exc:
            raise errors.UpstreamFailed(exc.detail, code="invalid_payment_required", upstreamStatus=402) from None
        signed = await self._sign_in(wallet, req, challenge)
        if isinstance(signed, dict):
            return signed
        if signed is not None:  # refused: pay the fresh challenge of the refusal
            challenge = signed
        blocked = await self._screen(wallet, challenge, req)
        index, kind = self._choose(wallet, challenge, req, blocked)
        offer = challenge.offers[index]
        amount = int(offer.amount)
        if req.approval_id is None and wallet.policy.needs_approval(amount):
            approval_id = await self.approvals.request(wallet.id, offer, amount, req.url)
            raise errors.ApprovalPending(
                f"paying {amount} needs approval (threshold {wallet.policy.approval_threshold}); "
                "retry with approvalId once it is approved",
                approvalId=str(approval_id),
                amount=str(amount),
            )
        res = await self.ledger.reserve(
            wallet.id,
            offer,
            amount,
            url=req.url,
            idempotency_key=idempotency_key,
            approval_id=req.approval_id,
            hold_seconds=offer.max_timeout_seconds + HOLD_GRACE,
        )
        # a retry of this purchase (same Idempotency-Key) sends the same payment-identifier id
        identifier = derived_id(str(wallet.id), idempotency_key) if idempotency_key is not None else new_id()
        return await self._pay_reserved(wallet, req, challenge, index, kind, res, identifier=identifier)

    async def _sign_in(
        self, wallet: Wallet, req: PayRequest, challenge: Challenge402
    ) -> dict[str, Any] | Challenge402 | None:
        """Sign in (Sign-In-With-X) to a purchase this wallet paid before, with the key that paid it.

        The answer when the upstream served it; the refusal's fresh 402 challenge to pay instead; None when the 402
        does not offer sign-in or the wallet never paid this purchase.
        """
        if not isinstance((challenge.extensions or {}).get(siwx.KEY), dict):
            return None
        networks = await self.ledger.paid_before(wallet.id, purchase_of(req))
        kinds = {k.name: k for k in (self.kinds.for_network(n) for n in networks) if k is not None}
        signers = [await self._signer(wallet, kind) for kind in kinds.values() if kind.label in wallet.addresses]
        signed = sign_in_header(challenge.extensions, signers)
        if signed is None:
            return None
        value, address = signed
        resp = await self.fetcher.fetch(req.method, req.url, {**req.headers, siwx.HEADER: value}, req.body)
        if resp.status == 402:
            log.info("wallet_sign_in_refused", wallet_id=str(wallet.id), url=req.url)
            try:
                return parse_challenge(resp.headers, resp.body)
            except PaymentRefused as exc:
                raise errors.UpstreamFailed(exc.detail, code="invalid_payment_required", upstreamStatus=402) from None
        log.info("wallet_signed_in", wallet_id=str(wallet.id), url=req.url, address=address)
        return {
            "upstream": response_json(resp),
            "payment": {"paid": False, "signedIn": address},
            "budget": await self._budget(wallet),
        }

    async def _screen(
        self, wallet: Wallet, challenge: Challenge402, req: PayRequest
    ) -> dict[int, errors.PolicyViolation]:
        """Offers whose payee must not be paid (sanctioned or deny-listed), screened concurrently."""
        if self.screen is None:
            return {}
        screen = self.screen

        async def one(i: int, offer: PaymentRequirements) -> tuple[int, str | None]:
            try:
                amount = parse_amount(offer.amount)
            except BadRequest:
                return i, None
            return i, await screen(wallet, offer, amount, req.url, wallet.address_for(self.kinds, offer.network) or "")

        results = await asyncio.gather(*(one(i, o) for i, o in enumerate(challenge.offers)))
        return {i: errors.PayeeBlocked(why) for i, why in results if why}

    def _choose(
        self,
        wallet: Wallet,
        challenge: Challenge402,
        req: PayRequest,
        blocked: Mapping[int, errors.PolicyViolation] | None = None,
    ) -> tuple[int, KeyKind]:
        """The cheapest offer the policy allows and a key can sign; the most telling refusal otherwise."""
        refusals: list[errors.PolicyViolation] = []
        acceptable: dict[int, tuple[int, KeyKind]] = {}  # offer index -> (amount, key kind)
        for i, offer in enumerate(challenge.offers):
            if blocked and i in blocked:
                refusals.append(blocked[i])
                continue
            try:
                amount = parse_amount(offer.amount)
            except BadRequest:
                continue
            why = pinned_refusal(req.listed, offer, amount) if req.listed is not None else None
            why = why or wallet.policy.refusal(offer, amount, req.max_amount)
            if why is not None:
                refusals.append(why)
                continue
            kind = self.kinds.for_network(offer.network)
            if kind is None or kind.label not in wallet.addresses or not kind.can_pay(offer):
                continue
            acceptable[i] = (amount, kind)
        if acceptable:
            index = min(acceptable, key=lambda i: (acceptable[i][0], i))
            return index, acceptable[index][1]
        codes = {r.code for r in refusals}
        if refusals and len(codes) == 1:
            raise refusals[0]
        raise errors.NoAcceptableOffer(
            "no offer of the 402 challenge can be paid by this wallet within its policy",
            refusals=[{"code": r.code, "detail": r.detail} for r in refusals],
        )

    async def _signer(self, wallet: Wallet, kind: KeyKind) -> PaymentSigner:
        stored = await self.store.sealed_key(wallet.id, kind.name)
        if stored is None:
            raise errors.NoAcceptableOffer(f"the wallet has no {kind.label} key")
        keyring, sealed = stored
        return keys.signer(keyring, wallet.id, kind, sealed)

    async def _pay_reserved(
        self,
        wallet: Wallet,
        req: PayRequest,
        challenge: Challenge402,
        index: int,
        kind: KeyKind,
        res: Reservation,
        *,
        identifier: str | None = None,
    ) -> dict[str, Any]:
        offer = challenge.offers[index]
        if not declared(challenge.extensions):
            identifier = None  # sent only where the seller declared payment-identifier
        try:
            signer = await self._signer(wallet, kind)
            if signer_for([signer], offer) is None:
                raise errors.NoAcceptableOffer(f"the {kind.label} key cannot sign this offer")
            scheme_payload = await signer.create_payload(offer, challenge.x402_version)
            payer = signer.address
            del signer  # the decrypted key lives no longer than the signature
            headers = dict(req.headers)
            name, value = payment_header(challenge, index, scheme_payload, payment_id=identifier)
            headers[name] = value
            proof = {
                "x402Version": challenge.x402_version,
                "accepted": msgspec.to_builtins(offer),
                "payload": scheme_payload,
            }
            # write-ahead: from here the signed payment may reach the upstream, so the hold becomes pending
            if not await self.ledger.mark_sent(res, payer=payer, proof=proof, purchase=purchase_of(req)):
                raise errors.UpstreamFailed("the budget hold expired before the payment was sent", code="hold_expired")
        except BaseException as exc:
            # nothing signed reached the upstream: give the hold back
            failure = not isinstance(exc, errors.PolicyViolation)
            await self.ledger.release(res, reason=f"error: {type(exc).__name__}", failure=failure)
            raise
        paid = {
            "paymentId": str(res.id),
            "amount": offer.amount,
            "network": offer.network,
            "asset": offer.asset,
            "payTo": offer.pay_to,
            "payer": payer,
            "url": req.url,
            "x402Version": challenge.x402_version,
            **proof_json(proof),
        }
        if identifier is not None:
            paid["paymentIdentifier"] = identifier
        stream: Stream | None = None  # the paid answer, left open for the caller (req.stream)
        try:
            second, stream = await self._send_paid(req, headers)
        except (errors.UpstreamFailed, errors.OutboundRefused) as exc:
            # timeout, reset, oversized answer: the upstream may have settled before it failed
            return await self._ambiguous(wallet, res, paid, proof, None, exc.detail, 502)
        receipt = settlement_of(second)
        if receipt is not None and receipt.success:
            try:
                paid["transaction"] = receipt.transaction
                paid["receipt"] = msgspec.to_builtins(receipt)
                charged = charged_amount(offer, receipt)
                if charged != int(offer.amount):
                    paid["maximum"], paid["amount"] = offer.amount, str(charged)
                upstream = response_json(second) if stream is None else head_json(second)
                used = await self.ledger.commit(
                    res, tx=receipt.transaction or None, result={**paid, "upstream": upstream}, amount=charged
                )
            except BaseException:
                if stream is not None:
                    stream.close()
                raise
            log.info("wallet_paid", wallet_id=str(wallet.id), payment_id=str(res.id), amount=str(charged))
            return {
                "upstream": upstream,
                "payment": {"paid": True, "status": "committed", **paid},
                "budget": budget_json(wallet.policy, used),
                **({"stream": stream} if stream is not None else {}),
            }
        reason = (
            receipt.error_reason
            if receipt is not None and isinstance(receipt.error_reason, str)
            else _refusal_of(second)
        )
        if receipt is not None:
            paid["receipt"] = msgspec.to_builtins(receipt)
        # a refusal after the header went out proves nothing: the seller may have settled and still failed
        return await self._ambiguous(wallet, res, paid, proof, second, str(reason), second.status)

    async def _ambiguous(
        self,
        wallet: Wallet,
        res: Reservation,
        paid: dict[str, Any],
        proof: Mapping[str, Any],
        answer: Fetched | None,
        reason: str,
        upstream_status: int,
    ) -> dict[str, Any]:
        """No receipt after the payment went out: ask the chain now; unless it decides, the payment stays pending."""
        upstream = response_json(answer) if answer is not None else None
        found = await self._chain_status(paid["network"], proof)
        if found is not None and found.state == "settled":
            await self.ledger.resolve(res.id, settled=True, tx=found.transaction, reason=f"on-chain after: {reason}")
            paid = {**paid, **({"transaction": found.transaction} if found.transaction else {})}
            await self.ledger.commit(res, tx=found.transaction, result={**paid, "upstream": upstream})
            log.info("wallet_paid_without_receipt", wallet_id=str(wallet.id), payment_id=str(res.id), reason=reason)
            return {
                **({"upstream": upstream} if upstream is not None else {}),
                "payment": {"paid": True, "status": "committed", "upstreamError": reason, **paid},
                "budget": await self._budget(wallet),
            }
        if found is not None and found.state == "void":
            await self.ledger.resolve(res.id, settled=False, tx=None, reason=f"{reason} ({found.message})")
            raise errors.UpstreamFailed(
                f"the upstream did not settle the payment: {reason}",
                code="payment_failed",
                upstreamStatus=upstream_status,
                paymentId=str(res.id),
            )
        await self.ledger.remember(res.id, {**paid, "upstream": upstream, "upstreamError": reason})
        log.warning("wallet_payment_pending", wallet_id=str(wallet.id), payment_id=str(res.id), reason=reason)
        extra: dict[str, Any] = {"upstream": upstream} if upstream is not None else {}
        raise errors.PaymentPending(
            f"the payment went out but its outcome is unknown ({reason}); it stays pending until the chain "
            "shows it settled or expired, and is never paid again under the same Idempotency-Key",
            payment={"status": "pending", **paid},
            upstreamStatus=upstream_status,
            budget=await self._budget(wallet),
            **extra,
        )

    async def _chain_status(self, network: str, proof: Mapping[str, Any]) -> PaymentStatus | None:
        """What the chain says right now (None when it cannot be asked: the reconciler tries again later)."""
        if self.status is None:
            return None
        try:
            return await self.status(proof)
        except (X402Error, OSError, TimeoutError) as exc:
            log.warning("payment_status_unavailable", network=network, error=type(exc).__name__)
            return None

    async def _send_paid(self, req: PayRequest, headers: dict[str, str]) -> tuple[Fetched, Stream | None]:
        """The paid retry's answer. Streaming (``req.stream``), an answer with a settled receipt comes back as its
        headers (empty body) and the open stream; one without is read whole as usual, to judge the refusal."""
        if not req.stream:
            return await self.fetcher.fetch(req.method, req.url, headers, req.body), None
        opened = await self.fetcher.open(req.method, req.url, headers, req.body)
        head = opened.fetched(b"")
        receipt = settlement_of(head)
        if receipt is not None and receipt.success:
            return head, opened
        return await read_whole(opened), None

    async def _replay(self, wallet: Wallet, key: str) -> dict[str, Any] | None:
        """The answer of a payment already made under this key: stored, pending, or 409 while it is in flight."""
        row = await self.ledger.find(wallet.id, key)
        if row is None:
            return None
        if row["status"] == "reserved":
            raise errors.PaymentInProgress("a payment with this Idempotency-Key is in progress")
        result = json.loads(row["result"]) if row["result"] else {}
        upstream = result.pop("upstream", None)
        result.pop("upstreamError", None)
        if row["status"] == "released":
            if row["sent_at"] is None:  # nothing went out under this key: it may pay
                await self.ledger.forget_key(row["id"])
                return None
            raise errors.PaymentNotSettled(
                "the payment made under this Idempotency-Key never settled (proven on-chain); "
                "use a new key to pay again",
                payment={**result, **payment_json(row)},
                paymentId=str(row["id"]),
            )
        if row["status"] == "pending":
            extra: dict[str, Any] = {"upstream": upstream} if upstream is not None else {}
            raise errors.PaymentPending(
                "the payment made under this Idempotency-Key is still pending",
                payment={**result, **payment_json(row), "replayed": True},
                budget=await self._budget(wallet),
                **extra,
            )
        if row["tx"] is not None:
            result["transaction"] = row["tx"]
        return {
            "upstream": upstream,
            "payment": {"paid": True, "replayed": True, **result, "status": "committed"},
            "budget": await self._budget(wallet),
        }

    async def _budget(self, wallet: Wallet) -> dict[str, Any]:
        async with self.ledger.pool.acquire() as conn:
            return budget_json(wallet.policy, await usage(conn, wallet.id))


def charged_amount(offer: PaymentRequirements, receipt: SettleResponse) -> int:
    """What a settled payment cost: an ``upto`` receipt's ``amount`` (the actual amount, at most the signed maximum);
    otherwise, or when the receipt does not say, the offer's amount."""
    maximum = int(offer.amount)
    amount = receipt.amount if isinstance(receipt.amount, str) else None
    if offer.scheme != "upto" or amount is None or not amount.isdigit():
        return maximum
    return min(int(amount), maximum)
