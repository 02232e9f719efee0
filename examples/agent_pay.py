"""Pay an x402 resource with the Python payer client; by default the demo route of ``x402 serve --dev``.

usage: python examples/agent_pay.py [URL]        (default: $X402_URL/demo/paid)
env: X402_URL (the service, default http://127.0.0.1:4020), PAYER_KEY and ASSET (default: the first dev payer key
and the dev token that ``x402 serve --dev`` publishes under ``dev`` in /.well-known/x402), MAX_AMOUNT (atomic
units one payment may cost, default 100000).
"""

import asyncio
import json
import os
import sys

import aiohttp
import msgspec

from chains.evm.payer import EvmSigner
from x402.client import PaymentPolicy, X402Client


async def main() -> int:
    base = os.environ.get("X402_URL", "http://127.0.0.1:4020").rstrip("/")
    url = sys.argv[1] if len(sys.argv) > 1 else base + "/demo/paid"
    key, asset = os.environ.get("PAYER_KEY"), os.environ.get("ASSET")
    async with aiohttp.ClientSession() as session:
        if not key or not asset:
            async with session.get(base + "/.well-known/x402") as r:
                dev = (await r.json()).get("dev") or {}
            key = key or dev["payers"][0]["privateKey"]
            asset = asset or dev["asset"]["address"]
        policy = PaymentPolicy(allowed_assets=[asset], max_amount=int(os.environ.get("MAX_AMOUNT", "100000")))
        resp = await X402Client(session, [EvmSigner(key)], policy).get(url)
    receipt = msgspec.to_builtins(resp.settlement) if resp.settlement else None
    print(json.dumps({"status": resp.status, "body": resp.text(), "settlement": receipt}), flush=True)
    return 0 if resp.status == 200 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
