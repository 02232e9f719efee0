"""Outbound HTTP for crawls and probes: the shared SSRF guard (``x402.outbound``) with the registry's error codes.

A refused URL is a 400 ``invalid_url`` or ``private_address``; an unusable origin is ``OutboundFailed`` (502) with
``reason`` unreachable, response_too_large or too_many_redirects. A redirect to another origin is not followed: the
redirect itself is the answer (a probe reports it as not a 402).
"""

from __future__ import annotations

from typing import Any, Final

from yarl import URL

from x402 import __version__
from x402.errors import BadRequest, DependencyError
from x402.outbound import Failed, Fetched, GuardedClient, Refused, is_public

__all__ = ["Fetched", "Outbound", "OutboundFailed", "is_public"]

USER_AGENT: Final = f"x402-registry/{__version__}"
_REASONS: Final = {"too_large": "response_too_large", "too_many_redirects": "too_many_redirects"}


class OutboundFailed(DependencyError):
    """A remote origin could not be reached or answered something unusable; ``reason`` says which."""

    status = 502
    code = "upstream_unreachable"

    def __init__(self, detail: str, *, reason: str = "unreachable") -> None:
        super().__init__(detail, dependency="outbound", reason=reason)
        self.reason = reason


def _refused(exc: Refused) -> BadRequest:
    return BadRequest(exc.detail, code="private_address" if exc.reason == "private_address" else "invalid_url")


class Outbound:
    """One guarded aiohttp session for registry traffic; lives in the app's cleanup_ctx."""

    def __init__(self, *, allow_private: bool, timeout: float = 10.0, max_bytes: int = 1024 * 1024) -> None:
        self.allow_private = allow_private
        self._client = GuardedClient(
            allow_private=allow_private,
            timeout=timeout,
            connect_timeout=min(timeout, 5.0),
            max_bytes=max_bytes,
            limit=64,
            limit_per_host=8,
            headers={"User-Agent": USER_AGENT},
        )

    async def start(self) -> None:
        """Open the session (inside the event loop)."""
        self._client.session()

    async def close(self) -> None:
        """Close the session."""
        await self._client.close()

    def check_url(self, url: str) -> URL:
        """Parse an outbound URL; refuse non-http(s) and literal private addresses (names are checked on resolve)."""
        try:
            return self._client.check_url(url)
        except Refused as exc:
            raise _refused(exc) from None

    async def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        max_bytes: int | None = None,
    ) -> Fetched:
        """Send one request; redirects are followed only within the same origin. Raises OutboundFailed."""
        try:
            return await self._client.fetch(
                method, url, json=json_body, headers=headers, max_bytes=max_bytes, refuse_off_host=False
            )
        except Refused as exc:
            raise _refused(exc) from None
        except Failed as exc:
            raise OutboundFailed(exc.detail, reason=_REASONS.get(exc.reason, "unreachable")) from None
