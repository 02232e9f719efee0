"""The x402 payer client for Python agents: ``X402Client`` + ``PaymentPolicy`` + per-chain ``PaymentSigner``s."""

from x402.client.client import Challenge402, PaidResponse, X402Client, parse_challenge
from x402.client.pending import PaymentPending, PendingPayment
from x402.client.policy import DEFAULT_MAX_AMOUNT, PaymentPolicy
from x402.client.signer import PaymentSigner, signer_for
from x402.client.usage import UsageClient

__all__ = [
    "DEFAULT_MAX_AMOUNT",
    "Challenge402",
    "PaidResponse",
    "PaymentPending",
    "PaymentPolicy",
    "PaymentSigner",
    "PendingPayment",
    "UsageClient",
    "X402Client",
    "parse_challenge",
    "signer_for",
]
