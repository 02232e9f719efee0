"""Outbound HTTP for agent payments and webhooks: the shared SSRF guard (``x402.outbound``) with wallet error codes.

Refusals are ``outbound_refused`` (400); an unusable upstream is ``upstream_timeout``, ``upstream_too_large``,
``upstream_unreachable`` or ``upstream_failed`` (502).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from multidict import CIMultiDict
from yarl import URL

from wallets.errors import OutboundRefused, UpstreamFailed
from x402.outbound import MAX_REDIRECTS, Failed, Fetched, GuardedClient, Refused, Stream

__all__ = ["DROPPED", "MAX_REDIRECTS", "Failed", "Fetched", "Fetcher", "Stream", "failure_code"]

#: Hop-by-hop request headers, never forwarded.
DROPPED: Final = frozenset(
    {
        "host",
        "connection",
        "content-length",
        "transfer-encoding",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-authorization",
    }
)
_CODES: Final = {
    "timeout": "upstream_timeout",
    "too_large": "upstream_too_large",
    "unreachable": "upstream_unreachable",
}


def failure_code(exc: Failed) -> str:
    """The wallet error code of an unusable upstream (``upstream_timeout``, ``upstream_too_large``, ...)."""
    return _CODES.get(exc.reason, "upstream_failed")


def _refused(exc: Refused) -> OutboundRefused:
    extra = {k: v for k, v in (("host", exc.host), ("location", exc.location)) if v}
    return OutboundRefused(exc.detail, **extra)


class Fetcher:
    """One guarded aiohttp session for every outbound payment request of this process."""

    def __init__(self, *, allow_private: bool, timeout: float = 30.0, max_bytes: int = 1024 * 1024) -> None:
        self._client = GuardedClient(allow_private=allow_private, timeout=timeout, max_bytes=max_bytes, limit=256)
        self.timeout = timeout
        self.max_bytes = max_bytes

    def check_url(self, url: str) -> URL:
        """Parse and vet a target URL (scheme, host, credentials, literal private IPs)."""
        try:
            return self._client.check_url(url)
        except Refused as exc:
            raise _refused(exc) from None

    async def fetch(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> Fetched:
        """Send one request; follows up to three redirects on the same scheme, host and port."""
        sent: CIMultiDict[str] = CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in DROPPED)
        try:
            return await self._client.fetch(method, url, headers=sent, data=body)
        except Refused as exc:
            raise _refused(exc) from None
        except Failed as exc:
            raise UpstreamFailed(exc.detail, code=_CODES.get(exc.reason)) from None

    async def open(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> Stream:
        """``fetch`` up to the answer's headers; the body streams from the returned ``Stream`` (which raises
        ``Failed``: map it with ``failure_code``). The caller closes it."""
        sent: CIMultiDict[str] = CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in DROPPED)
        try:
            return await self._client.open(method, url, headers=sent, data=body)
        except Refused as exc:
            raise _refused(exc) from None
        except Failed as exc:
            raise UpstreamFailed(exc.detail, code=failure_code(exc)) from None

    async def close(self) -> None:
        """Close the session."""
        await self._client.close()
