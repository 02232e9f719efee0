"""Wallet errors: each policy refusal has its own stable ``code`` (rendered as problem+json by the middleware)."""

from __future__ import annotations

from x402.errors import Conflict, Forbidden, X402Error


class PolicyViolation(X402Error):
    """A payment the wallet's policy refuses (4xx; the request may succeed with other input or budget)."""

    status = 403
    code = "policy_violation"
    title = "Refused by wallet policy"


class PayeeBlocked(PolicyViolation):
    """The payee is sanctioned or deny-listed: an agent never pays it, whatever its policy allows."""

    code = "payee_blocked"
    title = "Payee blocked by risk screening"


class BudgetExceeded(PolicyViolation):
    code = "budget_exceeded"
    title = "Total budget exceeded"


class WindowCapExceeded(PolicyViolation):
    """A rolling daily / weekly / monthly cap; ``window`` says which."""

    code = "window_cap_exceeded"
    title = "Window cap exceeded"


class PerPaymentCapExceeded(PolicyViolation):
    code = "per_payment_cap_exceeded"
    title = "Per-payment cap exceeded"


class UrlNotAllowed(PolicyViolation):
    code = "url_not_allowed"
    title = "URL not allowed"


class PayeeNotAllowed(PolicyViolation):
    code = "payee_not_allowed"
    title = "Payee not allowed"


class NetworkNotAllowed(PolicyViolation):
    code = "network_not_allowed"
    title = "Network not allowed"


class AssetNotAllowed(PolicyViolation):
    code = "asset_not_allowed"
    title = "Asset not allowed"


class WalletExpired(PolicyViolation):
    code = "wallet_expired"
    title = "Wallet expired"


class WalletPaused(PolicyViolation):
    status = 423
    code = "wallet_paused"
    title = "Wallet paused"


class OverMaxAmount(PolicyViolation):
    """The offer's price is above the caller's ``maxAmount``."""

    status = 409
    code = "over_max_amount"
    title = "Price above the caller's maxAmount"


class NoAcceptableOffer(PolicyViolation):
    """No offer of the 402 challenge can be paid by this wallet within its policy."""

    status = 409
    code = "no_acceptable_offer"
    title = "No acceptable offer"


class ApprovalPending(X402Error):
    """The payment is above the approval threshold: 202 with the approval id; retry with ``approvalId``."""

    status = 202
    code = "approval_pending"
    title = "Approval pending"


class ApprovalInvalid(Conflict):
    code = "approval_invalid"
    title = "Approval not usable"


class PaymentInProgress(Conflict):
    code = "payment_in_progress"
    title = "A payment with this Idempotency-Key is in progress"


class WalletForbidden(Forbidden):
    code = "wallet_forbidden"
    title = "Not allowed for this wallet"


class OutboundRefused(X402Error):
    """The URL to fetch is not a public http(s) address (SSRF guard) or redirects elsewhere."""

    status = 400
    code = "outbound_refused"
    title = "Outbound request refused"


class UpstreamFailed(X402Error):
    """The paid upstream could not be reached, answered too much, or refused our payment."""

    status = 502
    code = "upstream_failed"
    title = "Upstream failed"


class PaymentPending(X402Error):
    """The payment went out but its outcome is unknown (no receipt): 202; the chain decides, the hold stays."""

    status = 202
    code = "payment_pending"
    title = "Payment pending"


class PurchasePending(Conflict):
    """A payment for this same purchase is still pending: a call without Idempotency-Key does not pay it again."""

    code = "purchase_pending"
    title = "A payment for this purchase is pending"


class PaymentNotSettled(Conflict):
    """The payment made under this Idempotency-Key was proven never to settle; a new key pays again."""

    code = "payment_not_settled"
    title = "The payment under this Idempotency-Key did not settle"


class PriceAboveListing(PolicyViolation):
    """A routed call's live 402 asks more than the registry listing (or offers terms it does not list): not signed."""

    status = 409
    code = "price_above_listing"
    title = "Live price above the listed price"


class ResourceTrustTooLow(PolicyViolation):
    """The resource's trust score is below the wallet policy's ``minResourceTrust`` (or it has no score)."""

    code = "resource_trust_too_low"
    title = "Resource trust below the wallet's minimum"
