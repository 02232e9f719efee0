"""Trust scores through the API: a wallet's own score, and registry search above a minimum score.

usage: python examples/trust_scores.py
env: X402_URL (the service, default http://127.0.0.1:4020), X402_KEY (a key of the wallet's tenant, or its agent
key), WALLET_ID (the wallet whose score to read; none: search only), QUERY (default "demo"), MIN_TRUST (default 50).
Prints the wallet's ``{score, factors, computedAt}`` (docs/trust.md) and the URLs of the resources whose trust
score is at least MIN_TRUST, ranked as ``/discovery/search`` ranks them (trust is one ranking input).
"""

import asyncio
import json
import os
import sys
from typing import Any

import aiohttp


async def main() -> int:
    base = os.environ.get("X402_URL", "http://127.0.0.1:4020").rstrip("/")
    headers = {"Authorization": f"Bearer {os.environ['X402_KEY']}"} if os.environ.get("X402_KEY") else {}
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession(headers=headers) as session:
        if os.environ.get("WALLET_ID"):
            async with session.get(f"{base}/v1/wallets/{os.environ['WALLET_ID']}/trust") as r:
                if r.status != 200:
                    print(await r.text(), file=sys.stderr)
                    return 1
                out["wallet"] = await r.json()
        params = {"query": os.environ.get("QUERY", "demo"), "minTrust": os.environ.get("MIN_TRUST", "50")}
        async with session.get(base + "/discovery/search", params=params) as r:
            if r.status != 200:
                print(await r.text(), file=sys.stderr)
                return 1
            out["resources"] = [item["resource"] for item in (await r.json())["resources"]]
    print(json.dumps(out, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
