"""One error tree for the whole service: every error carries an HTTP status and a stable ``code``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec
from aiohttp import web

from x402 import tracing

PROBLEM_JSON: Final = "application/problem+json"


def problem_document(
    status: int, code: str, detail: str, *, title: str | None = None, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The one RFC 9457 problem document: type, title, status, code and detail, then the extra members (as given)."""
    body: dict[str, Any] = {
        "type": f"https://x402.dev/problems/{code}",
        "title": title or code.replace("_", " ").capitalize(),
        "status": status,
        "code": code,
        "detail": detail,
    }
    body.update(extra or {})
    return body


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    extra: Mapping[str, Any] | None = None,
    request_id: str | None = None,
) -> web.Response:
    """The one application/problem+json response (``requestId`` last when given)."""
    body = problem_document(status, code, detail, title=title, extra=extra)
    if request_id:
        body["requestId"] = request_id
    tid = tracing.trace_id()
    if tid:
        body["traceId"] = tid
    return web.Response(status=status, body=msgspec.json.encode(body), content_type=PROBLEM_JSON)


class X402Error(Exception):
    """Base of every error the service raises on purpose; rendered as application/problem+json."""

    status: int = 500
    code: str = "internal_error"
    title: str = "Internal error"

    def __init__(self, detail: str | None = None, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code is not None:
            self.code = code
        self.extra = extra

    def to_problem(self) -> dict[str, Any]:
        """The RFC 9457 problem document for this error (no secrets: only detail + extra)."""
        return problem_document(self.status, self.code, self.detail, title=self.title, extra=self.extra)


class BadRequest(X402Error):
    status = 400
    code = "bad_request"
    title = "Bad request"


class InvalidPaymentHeader(BadRequest):
    """A payment header that cannot be decoded (base64, JSON, shape, size)."""

    code = "invalid_payment_header"
    title = "Invalid payment header"


class ValidationFailed(X402Error):
    status = 422
    code = "validation_failed"
    title = "Validation failed"


class Unauthorized(X402Error):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class Forbidden(X402Error):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(X402Error):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(X402Error):
    status = 409
    code = "conflict"
    title = "Conflict"


class InsufficientCredits(Conflict):
    """A customer's credit balance does not cover a burn (``balance`` and ``needed`` in the problem)."""

    code = "insufficient_credits"

    def __init__(self, detail: str | None = None, *, balance: int, needed: int) -> None:
        super().__init__(detail or "the customer's credit balance does not cover this", balance=balance, needed=needed)
        self.balance = balance
        self.needed = needed


class PayloadTooLarge(X402Error):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class UnsupportedMediaType(X402Error):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class RateLimited(X402Error):
    status = 429
    code = "rate_limited"
    title = "Too many requests"


class DependencyError(X402Error):
    """A dependency (database, cache, chain RPC, remote facilitator) failed; says which one."""

    status = 503
    code = "dependency_unavailable"
    title = "Dependency unavailable"

    def __init__(self, detail: str | None = None, *, dependency: str, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail, code=code, dependency=dependency, **extra)
        self.dependency = dependency


class DatabaseUnavailable(DependencyError):
    code = "database_unavailable"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail, dependency="postgres", **extra)


class ChainUnavailable(DependencyError):
    """No RPC URL of a network answered (connection errors, timeouts, open circuit breakers)."""

    code = "chain_unavailable"

    def __init__(self, detail: str | None = None, *, network: str, **extra: Any) -> None:
        super().__init__(detail, dependency=f"rpc:{network}", network=network, **extra)


class SignerBusy(DependencyError):
    """A settlement waited longer than its bound for a signer's nonce lane (the signer is saturated): nothing was
    signed or sent, and its claim is dropped, so the payer may present the same payment again."""

    code = "signer_busy"

    def __init__(self, detail: str | None = None, *, network: str, **extra: Any) -> None:
        super().__init__(detail, dependency=f"signer:{network}", network=network, **extra)


class ChainRejected(DependencyError):
    """The chain answered but refused the request (RPC error that is not about the payment)."""

    status = 502
    code = "chain_rejected"

    def __init__(self, detail: str | None = None, *, network: str, **extra: Any) -> None:
        super().__init__(detail, dependency=f"rpc:{network}", network=network, **extra)


class FacilitatorUnavailable(DependencyError):
    code = "facilitator_unavailable"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail, dependency="facilitator", **extra)


class PaymentRefused(X402Error):
    """The payer client will not pay: no offer of a 402 challenge fits its signers and spending policy."""

    status = 402
    code = "no_acceptable_offer"
    title = "Payment refused"


class ConfigError(X402Error):
    """Bad settings or network config; raised at start-up, never on a request."""

    code = "config_error"
    title = "Configuration error"
