"""A facilitator reached over HTTP (architecture.md §6): the same ``Facilitator`` interface as the in-process one."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Final, TypeVar

import aiohttp
from yarl import URL

from x402.errors import BadRequest, FacilitatorUnavailable, X402Error
from x402.facilitator.base import AnyPayload, AnyRequirements
from x402.logs import get_logger
from x402.wire import jsonlimits, payment_identifier, reasons
from x402.wire.models import (
    FacilitatorRequest,
    SettleResponse,
    SupportedResponse,
    VerifyResponse,
    encode_json,
)

log = get_logger("x402.facilitator.remote")

T = TypeVar("T")

_MAX_BODY: Final = 1024 * 1024
_MAX_REDIRECTS: Final = 3


class RemoteFacilitator:
    """POST /verify, POST /settle and GET /supported on a facilitator URL.

    ``await start()`` loads ``/supported`` and raises ``FacilitatorUnavailable`` when it cannot (fail closed).
    Transport errors, timeouts, 5xx and unreadable bodies raise ``FacilitatorUnavailable`` (503); negative
    verify/settle results are values. Redirects are followed only within the same origin.
    """

    def __init__(
        self,
        url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        settle_timeout: float = 60.0,
        headers: Mapping[str, str] | None = None,
        pending_retry_delay: float = 0.5,
    ) -> None:
        self.url = URL(url.rstrip("/"))
        if self.url.scheme not in ("http", "https") or not self.url.host:
            raise ValueError(f"facilitator URL must be http(s)://host[:port][/path], got {url!r}")
        self._session = session
        self._own_session = session is None
        self.timeout = timeout
        self.settle_timeout = settle_timeout
        self.headers = dict(headers or {})
        self.pending_retry_delay = pending_retry_delay
        self._supported: SupportedResponse | None = None

    @property
    def started(self) -> bool:
        """True once ``/supported`` was loaded."""
        return self._supported is not None

    async def start(self) -> None:
        """Open the session (unless one was given) and load ``/supported``."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            self._supported = await self._fetch_supported()
        except BaseException:
            await self.close()
            raise
        log.info("remote_facilitator_ready", url=str(self.url), kinds=len(self._supported.kinds))

    async def close(self) -> None:
        """Close the session if this object opened it."""
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> RemoteFacilitator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def supports(self, x402_version: int, scheme: str, network: str) -> bool:
        """True when the loaded ``/supported`` lists this kind (False before ``start``)."""
        if self._supported is None:
            return False
        return any(
            k.x402_version == x402_version and k.scheme == scheme and k.network == network
            for k in self._supported.kinds
        )

    # -------------------------------------------------------------------------------- Facilitator

    async def supported(self) -> SupportedResponse:
        """The ``/supported`` answer loaded at start-up (loaded now if ``start`` was not called)."""
        if self._supported is None:
            await self.start()
        assert self._supported is not None
        return self._supported

    async def verify(self, payload: AnyPayload, requirements: AnyRequirements) -> VerifyResponse:
        """``POST /verify``."""
        return await self._post("verify", payload, requirements, VerifyResponse, self.timeout)

    async def settle(self, payload: AnyPayload, requirements: AnyRequirements) -> SettleResponse:
        """``POST /settle``; a ``settlement_pending`` answer is retried once with the identical body."""
        result = await self._post("settle", payload, requirements, SettleResponse, self.settle_timeout)
        if not result.success and result.error_reason == reasons.SETTLEMENT_PENDING:
            await asyncio.sleep(self.pending_retry_delay)
            result = await self._post("settle", payload, requirements, SettleResponse, self.settle_timeout)
        return result

    # ------------------------------------------------------------------------------------ transport

    async def _fetch_supported(self) -> SupportedResponse:
        status, body = await self._request("GET", "supported", None, self.timeout)
        if status != 200:
            raise FacilitatorUnavailable(f"GET /supported answered HTTP {status}", url=str(self.url))
        return self._decode(body, SupportedResponse, "supported")

    async def _post(
        self, op: str, payload: AnyPayload, requirements: AnyRequirements, type_: type[T], timeout: float
    ) -> T:
        body = encode_json(
            FacilitatorRequest(x402_version=payload.x402_version, payload=payload, requirements=requirements).to_body()
        )
        status, raw = await self._request("POST", op, body, timeout)
        if status == 200:
            return self._decode(raw, type_, op)
        # some facilitators answer 400 with a result-shaped body for a bad payment: that is still a value
        if 400 <= status < 500:
            try:
                return jsonlimits.decode(raw, type_)
            except BadRequest:
                pass
            refusal = _refusal(raw)
            if refusal is not None:  # the payer's mistake (payment-identifier 400 / 409): the same error here
                raise refusal
            raise FacilitatorUnavailable(
                f"POST /{op} answered HTTP {status}: {raw[:200].decode('utf-8', 'replace')}",
                code="facilitator_rejected",
                url=str(self.url),
            )
        raise FacilitatorUnavailable(f"POST /{op} answered HTTP {status}", url=str(self.url))

    def _decode(self, raw: bytes, type_: type[T], op: str) -> T:
        try:
            return jsonlimits.decode(raw, type_)
        except BadRequest as exc:
            raise FacilitatorUnavailable(
                f"/{op} answered an unreadable body ({exc.code}): {exc.detail}", url=str(self.url)
            ) from None

    async def _request(self, method: str, op: str, body: bytes | None, timeout: float) -> tuple[int, bytes]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = self.url / op
        headers = {"Accept": "application/json", **self.headers}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            for _ in range(_MAX_REDIRECTS + 1):
                async with self._session.request(
                    method,
                    url,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=timeout),
                ) as resp:
                    if resp.status in (301, 302, 303, 307, 308):
                        url = self._redirect_target(url, resp, method)
                        continue
                    raw = await resp.content.read(_MAX_BODY + 1)
                    if len(raw) > _MAX_BODY:
                        raise FacilitatorUnavailable(f"/{op} answer is larger than {_MAX_BODY} bytes")
                    return resp.status, raw
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise FacilitatorUnavailable(
                f"{method} /{op} failed: {type(exc).__name__}: {exc}"[:300], url=str(self.url)
            ) from None
        raise FacilitatorUnavailable(f"{method} /{op}: too many redirects", url=str(self.url))

    def _redirect_target(self, url: URL, resp: aiohttp.ClientResponse, method: str) -> URL:
        location = resp.headers.get("Location")
        if not location:
            raise FacilitatorUnavailable(f"redirect without Location from {url}")
        target = url.join(URL(location))
        if target.origin() != self.url.origin():
            # never send payment payloads (or auth headers) to a host we were not configured with
            raise FacilitatorUnavailable(f"refused redirect to another origin: {target.origin()}", url=str(self.url))
        if method == "POST" and resp.status not in (307, 308):
            raise FacilitatorUnavailable(f"HTTP {resp.status} redirect would turn POST into GET", url=str(self.url))
        return target


def _refusal(raw: bytes) -> X402Error | None:
    """A problem+json answer whose ``code`` is one of the payment-identifier refusals, as that error."""
    try:
        doc = jsonlimits.loads(raw[:65536])
    except BadRequest:
        return None
    if not isinstance(doc, dict):
        return None
    error = payment_identifier.ERRORS.get(str(doc.get("code")))
    detail = doc.get("detail")
    return error(str(detail)[:500] if detail else None) if error is not None else None
