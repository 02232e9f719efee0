"""Solana RPC clients of one network: failover across its URLs with a circuit breaker per URL (``chains.breaker``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import httpcore2  # noqa: F401  # imported here: httpx2 imports it lazily (reading metadata) on first client
import httpx2
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.core import RPCException
from solders.commitment_config import CommitmentLevel
from solders.errors import SerdeJSONError
from solders.rpc.config import RpcContextConfig
from solders.rpc.requests import IsBlockhashValid
from solders.rpc.responses import IsBlockhashValidResp
from solders.signature import Signature

from chains.breaker import BREAKER_COOLDOWN, BREAKER_THRESHOLD, CircuitBreaker, NoEndpointAnswered, first_answer
from x402.errors import BadRequest, ChainUnavailable
from x402.wire import reasons as R

log = logging.getLogger("chains.solana")
T = TypeVar("T")

#: SerdeJSONError: an answer solders cannot parse (malformed, or nested past serde_json's 128-level limit) counts
#: as a failed endpoint, like a transport error, instead of escaping as an unexpected exception
NETWORK_ERRORS = (SolanaRpcException, httpx2.HTTPError, OSError, TimeoutError, SerdeJSONError)


class SolanaRpcPool:
    """The RPC clients of one network, tried in order; transport errors fail over and feed each URL's breaker."""

    def __init__(
        self,
        network: str,
        urls: Sequence[str],
        timeout: float,
        *,
        breaker_threshold: int = BREAKER_THRESHOLD,
        breaker_cooldown: float = BREAKER_COOLDOWN,
    ) -> None:
        if not urls:
            raise ValueError(f"{network}: at least one RPC URL is needed")
        self.network = network
        self.timeout = timeout
        self._endpoints = [
            (CircuitBreaker(breaker_threshold, breaker_cooldown), AsyncClient(u, timeout=timeout)) for u in urls
        ]
        self._urls = list(urls)

    def __repr__(self) -> str:
        # URLs may embed provider API keys: never print them.
        return f"SolanaRpcPool(network={self.network!r}, urls={len(self._endpoints)})"

    def breaker_state(self) -> list[str]:
        """Per URL (in order): ``closed``, ``open`` or ``half-open``."""
        now = time.monotonic()
        return [breaker.state(now) for breaker, _ in self._endpoints]

    def breaker_states(self) -> list[tuple[str, str]]:
        """``(url, state)`` per URL, in order (callers label by host only)."""
        return list(zip(self._urls, self.breaker_state(), strict=True))

    async def call(self, fn: Callable[[AsyncClient], Awaitable[T]]) -> T:
        """Run ``fn`` against the first client that answers; RPC refusals propagate, no answer -> ChainUnavailable."""

        async def attempt(client: AsyncClient) -> T:
            async with asyncio.timeout(self.timeout):
                return await fn(client)

        def failed(index: int, exc: BaseException) -> None:
            log.warning("solana rpc %d of %s failed: %s", index, self.network, type(exc).__name__)

        try:
            return await first_answer(self._endpoints, attempt, NETWORK_ERRORS, failed)
        except NoEndpointAnswered as exc:
            why = "all circuit breakers open" if exc.tried == 0 else type(exc.last).__name__
            raise ChainUnavailable(
                f"no RPC endpoint of {self.network} answered ({why})", network=self.network
            ) from None

    async def signature_status(self, sig: Signature) -> Any:
        """getSignatureStatuses (with history) of one signature: its status or None."""

        async def run(c: AsyncClient) -> Any:
            return await c.get_signature_statuses([sig], search_transaction_history=True)

        return (await self.call(run)).value[0]

    async def transaction(self, sig: Signature) -> Any:
        """getTransaction (confirmed) of a signature, or None when the node refuses or does not know it."""

        async def run(c: AsyncClient) -> Any:
            return await c.get_transaction(sig, commitment=Confirmed, max_supported_transaction_version=1)

        try:
            return (await self.call(run)).value
        except RPCException:
            return None

    async def blockhash_valid(self, blockhash: Any) -> bool:
        """isBlockhashValid (processed); True when the node cannot tell, so it stays possibly landable."""

        async def run(c: AsyncClient) -> Any:
            body = IsBlockhashValid(blockhash, RpcContextConfig(CommitmentLevel.Processed))
            return await c._provider.make_request(body, IsBlockhashValidResp)

        try:
            return bool((await self.call(run)).value)
        except RPCException:
            return True

    async def close(self) -> None:
        """Close every client."""
        for _, client in self._endpoints:
            await client.close()


def pool_for(pools: Mapping[str, SolanaRpcPool], network: str) -> SolanaRpcPool:
    """The pool of a configured network; anything else is the caller's ``invalid_network``."""
    pool = pools.get(network)
    if pool is None:
        raise BadRequest(f"network {network!r} is not configured on this facilitator", code=R.INVALID_NETWORK)
    return pool
