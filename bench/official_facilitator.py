"""Baseline for bench/verify.py and bench/settle.py: the official x402 Python SDK's facilitator behind a minimal aiohttp
`POST /verify` and `POST /settle`.

Runs inside bench/.venv-official (``x402[evm]==2.25.0``, coincurve, aiohttp), never inside the service's venv. The SDK
is used as a black box through its public API only.

In x402 2.25.0 the EVM ``exact`` scheme's ``verify`` is synchronous (web3.py ``HTTPProvider``, blocking RPC calls),
even under the ``async def x402Facilitator.verify``, so each request blocks the event loop for its RPC round trips.
Two ways to serve it: ``--mode async`` (default) awaits ``x402Facilitator.verify`` on the loop, one verify at a
time; ``--mode threads`` calls ``x402FacilitatorSync.verify`` in a thread pool so RPC waits overlap. On the 2-core
bench box the async mode was the faster one (about 165 vs 110-150 verifies/s with 16/4/2 threads: the GIL), so the
benchmark uses it as the baseline.

``POST /settle`` calls the SDK's own ``settle`` the same way (its EVM ``exact`` settle broadcasts
``transferWithAuthorization`` and waits for the receipt before it answers).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import sys
from typing import Any

from aiohttp import web


def _build(mode: str, key: str, rpc_url: str, network: str) -> Any:
    from x402.mechanisms.evm import FacilitatorWeb3Signer
    from x402.mechanisms.evm.exact import register_exact_evm_facilitator

    from x402 import x402Facilitator, x402FacilitatorSync

    facilitator = x402FacilitatorSync() if mode == "threads" else x402Facilitator()
    register_exact_evm_facilitator(
        facilitator, FacilitatorWeb3Signer(private_key=key, rpc_url=rpc_url), networks=network
    )
    return facilitator


def _parse(body: bytes) -> tuple[Any, Any]:
    from x402.schemas.helpers import parse_payment_payload, parse_payment_requirements

    doc = json.loads(body)
    if not isinstance(doc, dict) or "paymentPayload" not in doc or "paymentRequirements" not in doc:
        raise ValueError("Missing paymentPayload or paymentRequirements")
    payload = parse_payment_payload(doc["paymentPayload"])
    requirements = parse_payment_requirements(payload.x402_version, doc["paymentRequirements"])
    return payload, requirements


def make_app(facilitator: Any, mode: str, threads: int) -> web.Application:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="facilitator")

    def verify_sync(body: bytes) -> str:
        payload, requirements = _parse(body)
        return str(facilitator.verify(payload, requirements).model_dump_json(by_alias=True, exclude_none=True))

    def settle_sync(body: bytes) -> str:
        payload, requirements = _parse(body)
        return str(facilitator.settle(payload, requirements).model_dump_json(by_alias=True, exclude_none=True))

    async def verify(request: web.Request) -> web.Response:
        return await run(request, "verify", verify_sync)

    async def settle(request: web.Request) -> web.Response:
        return await run(request, "settle", settle_sync)

    async def run(request: web.Request, op: str, sync: Any) -> web.Response:
        body = await request.read()
        try:
            if mode == "threads":
                text = await asyncio.get_running_loop().run_in_executor(pool, sync, body)
            else:
                payload, requirements = _parse(body)
                result = await getattr(facilitator, op)(payload, requirements)
                text = result.model_dump_json(by_alias=True, exclude_none=True)
        except ValueError as exc:  # malformed JSON or schema (pydantic's ValidationError is a ValueError)
            return web.json_response({"error": str(exc)[:500]}, status=400)
        except Exception as exc:  # an unregistered scheme/network or an RPC failure
            return web.json_response({"error": f"{type(exc).__name__}: {exc}"[:500]}, status=500)
        return web.Response(text=text, content_type="application/json")

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def close_pool(app: web.Application) -> None:
        pool.shutdown(wait=False, cancel_futures=True)

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/verify", verify)
    app.router.add_post("/settle", settle)
    app.router.add_get("/healthz", healthz)
    app.on_cleanup.append(close_pool)
    return app


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rpc-url", required=True)
    p.add_argument("--network", default="eip155:31337")
    p.add_argument("--mode", choices=("threads", "async"), default="async")
    p.add_argument("--threads", type=int, default=16, help="thread pool size in --mode threads")
    args = p.parse_args()
    key = os.environ.get("OFFICIAL_FACILITATOR_KEY")
    if not key:
        print("OFFICIAL_FACILITATOR_KEY is not set", file=sys.stderr)
        return 2

    import eth_keys.backends  # the SDK's signature recovery goes through eth-keys: say which backend it got

    backend = type(eth_keys.backends.get_backend()).__name__
    facilitator = _build(args.mode, key, args.rpc_url, args.network)
    print(f"official facilitator: mode={args.mode} threads={args.threads} ecc={backend} pid={os.getpid()}", flush=True)
    web.run_app(
        make_app(facilitator, args.mode, args.threads),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        reuse_address=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
