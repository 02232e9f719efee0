"""Our HTTP clients against a hostile peer answering 100,000-level JSON; run as ``python -m`` in a subprocess.

Each check prints one line naming the clean failure it got; a crash shows as the subprocess's exit code, so the
pytest process that started it survives to report it (tests/x402/test_hostile_upstreams.py).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import eth_account  # noqa: F401  # as in every service process: py_ecc raises the recursion limit to 100000
import msgspec

from tests.harness.wire import UNCONFIGURED_REQUIREMENTS
from x402.errors import X402Error


async def rpc(base: str) -> str:
    """The EVM JSON-RPC pool reading a deep answer."""
    from chains.evm.rpc import RpcPool

    pool = RpcPool("eip155:1", [base + "/rpc"], timeout=10)
    try:
        await pool.call("eth_chainId")
    except X402Error as exc:
        return f"{type(exc).__name__} {exc.detail}"
    finally:
        await pool.close()
    return "answered"


async def remote_facilitator(base: str) -> str:
    """A remote facilitator answering /supported and /verify with deep JSON."""
    from x402.facilitator.remote import RemoteFacilitator
    from x402.wire.models import PaymentPayload, PaymentRequirements

    out = []
    fac = RemoteFacilitator(base)
    try:
        try:
            await fac.start()
        except X402Error as exc:
            out.append(f"supported:{exc.code}")
        req = msgspec.convert(UNCONFIGURED_REQUIREMENTS, PaymentRequirements)
        try:
            await fac.verify(PaymentPayload(accepted=req, payload={}), req)
        except X402Error as exc:
            out.append(f"verify:{exc.code}:{'json_too_deep' in exc.detail}")
    finally:
        await fac.close()
    return " ".join(out)


async def x402_client(base: str) -> str:
    """``X402Client`` reading a deep 402 body, and ``PaidResponse.json()`` of a deep 200 body."""
    from x402.client import X402Client

    out = []
    async with aiohttp.ClientSession() as session:
        client = X402Client(session, [])
        try:
            await client.get(base + "/402")
        except X402Error as exc:
            out.append(f"402:{exc.code}")
        resp = await client.get(base + "/ok")
        try:
            resp.json()
        except X402Error as exc:
            out.append(f"json:{exc.code}")
    return " ".join(out)


async def screening(base: str) -> str:
    """The external screening provider answering deep JSON."""
    from risk.screening import ChainalysisScreening

    provider = ChainalysisScreening("key", base_url=base)
    try:
        await provider.screen("0x" + "11" * 20)
    except X402Error as exc:
        return f"screen:{exc.code}"
    finally:
        await provider.close()
    return "answered"


async def solana(base: str) -> str:
    """The Solana adapter's RPC pool: solders parses answers with serde_json (depth-limited to 128); an answer it
    cannot parse fails that endpoint over like a transport error, ending as ChainUnavailable."""
    from solders.pubkey import Pubkey

    from chains.solana.rpc import SolanaRpcPool

    pool = SolanaRpcPool("solana:test", [base + "/rpc"], timeout=10)
    try:
        await pool.call(lambda c: c.get_balance(Pubkey.default()))
    except X402Error as exc:
        return f"solana:{type(exc).__name__}:{exc.detail}"
    finally:
        await pool.close()
    return "answered"


CHECKS: dict[str, Callable[[str], Coroutine[Any, Any, str]]] = {
    "rpc": rpc,
    "remote_facilitator": remote_facilitator,
    "x402_client": x402_client,
    "screening": screening,
    "solana": solana,
}

if __name__ == "__main__":
    print(asyncio.run(CHECKS[sys.argv[1]](sys.argv[2])), flush=True)
