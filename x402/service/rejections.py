"""aiohttp's own refusals (a header or request line over the limit, a malformed request) as problem+json.

These requests never reach the app's middleware: aiohttp's protocol handler answers them itself with plain text.
``ServiceRunner`` swaps in a handler that writes the same problem+json body as every other error of the service.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from x402.errors import problem_response
from x402.logs import get_logger

log = get_logger("x402.service.http")

#: The header value limit aiohttp is given: twice the payment header limit, so a payment header over
#: ``X402_MAX_HEADER_BYTES`` still reaches the paywall and gets its ``header_too_large`` reason.
HEADER_SLACK: Final = 2
AIOHTTP_DEFAULT_FIELD: Final = 8190


def handler_args(max_header_bytes: int) -> dict[str, Any]:
    """``web.Application(handler_args=...)`` for a payment header limit of ``max_header_bytes``."""
    return {"max_field_size": max(AIOHTTP_DEFAULT_FIELD, HEADER_SLACK * max_header_bytes)}


class ProblemRequestHandler(RequestHandler):
    """aiohttp's protocol handler, answering its own 4xx refusals with problem+json instead of plain text."""

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        """problem+json for a refused request (a 5xx keeps aiohttp's own answer)."""
        if not 400 <= status < 500 or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        code, detail = "bad_http_request", "the request is not valid HTTP/1.1"
        if isinstance(exc, LineTooLong):
            if f"more than {self.max_field_size} bytes" in str(exc):
                status, code = 431, "headers_too_large"
                detail = f"a request header is longer than {self.max_field_size} bytes"
            else:
                status, code, detail = 414, "uri_too_long", "the request line is too long"
        log.info("http_request_refused", status=status, code=code, remote=request.remote)
        out = problem_response(status, code, detail)
        out.force_close()
        return out


class _ProblemServer(web.Server):
    def __call__(self) -> RequestHandler:
        return ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class ServiceRunner(web.AppRunner):
    """An ``AppRunner`` whose connections answer aiohttp's own refusals with problem+json."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _ProblemServer  # same object and state, one overridden factory method
        return server
