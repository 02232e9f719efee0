"""The responses the paywall writes: 402 challenges, settlement headers, problem+json for its own failures.

A browser (its Accept lists text/html) gets the HTML paywall page instead of the JSON body, with the same headers.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from x402.errors import problem_response
from x402.paywall.challenge import EXPOSE_HEADERS, PAYMENT_REQUIRED_ERROR, Challenge, challenge_headers
from x402.wire.codec import PAYMENT_RESPONSE, X_PAYMENT_RESPONSE, encode_header
from x402.wire.models import SettleResponse


def challenge_response(
    request: web.Request, challenge: Challenge, error: str, *, status: int = 402, settlement: str | None = None
) -> web.Response:
    """A 402 with ``PAYMENT-REQUIRED`` (v2), the v1 JSON body (or the HTML page) and ``Cache-Control: no-store``."""
    html = settlement is None and "text/html" in request.headers.get("Accept", "")
    if error == PAYMENT_REQUIRED_ERROR and settlement is None and not html:
        # the hot path: everything was encoded when the challenge was built
        return web.Response(status=status, body=challenge.body, headers=challenge.headers)  # Response copies them
    header, body = challenge.encode(error)
    headers = challenge_headers(header, "text/html; charset=utf-8" if html else "application/json")
    if settlement is not None:
        headers[PAYMENT_RESPONSE] = settlement
        if 1 in challenge.versions:
            headers[X_PAYMENT_RESPONSE] = settlement
    return web.Response(status=status, body=challenge.html() if html else body, headers=headers)


def attach_settlement(response: web.StreamResponse, result: SettleResponse, *, v1: bool, upfront: bool) -> None:
    """Add ``PAYMENT-RESPONSE`` (and ``X-PAYMENT-RESPONSE`` for a v1 payment) to the handler's response."""
    value = encode_header(result)
    response.headers[PAYMENT_RESPONSE] = value
    if v1:
        response.headers[X_PAYMENT_RESPONSE] = value
    if upfront:
        # money moved before the handler ran: a shared cache must not hand this response to someone else
        response.headers["Cache-Control"] = "private"
    expose_headers(response)


def expose_headers(response: web.StreamResponse) -> None:
    """Merge the x402 headers into ``Access-Control-Expose-Headers`` (browsers hide them otherwise)."""
    have = response.headers.get("Access-Control-Expose-Headers")
    if not have:
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    elif "PAYMENT-RESPONSE" not in have.upper():
        response.headers["Access-Control-Expose-Headers"] = f"{have}, {EXPOSE_HEADERS}"


def problem(status: int, code: str, detail: str, **extra: Any) -> web.Response:
    """problem+json for a paywall failure that is not the payer's fault (never an empty 402)."""
    resp = problem_response(status, code, detail, extra=extra)
    resp.headers["Cache-Control"] = "no-store"
    return resp
