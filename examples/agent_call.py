"""One key, any resource: call a listed resource through ``POST /v1/call``, paid from the agent's wallet.

usage: python examples/agent_call.py [RESOURCE]
env: X402_URL (the service, default http://127.0.0.1:4020), X402_KEY (an agent key from
``POST /v1/wallets/{id}/agent-keys``: its one wallet pays; or a tenant key with WALLET_ID set), RESOURCE (a registry
id or listed URL; default: the best match of ``/discovery/search?query=QUERY``, QUERY default "demo"),
MAX_AMOUNT (atomic units the call may cost, default 100000), MIN_TRUST (only resources scored at least this).
Prints the upstream's status and body, our receipt (X402-Call-Receipt) and the caller's usage summary.
"""

import asyncio
import base64
import json
import os
import sys
from typing import Any

import aiohttp


async def pick(session: aiohttp.ClientSession, base: str) -> str:
    """The best search match (optionally above a trust score)."""
    params = {"query": os.environ.get("QUERY", "demo"), "limit": "1"}
    if os.environ.get("MIN_TRUST"):
        params["minTrust"] = os.environ["MIN_TRUST"]
    async with session.get(base + "/discovery/search", params=params) as r:
        found = (await r.json()).get("resources") or []
    if not found:
        raise SystemExit("no listed resource matches; list one with POST /v1/resources or set RESOURCE")
    return str(found[0]["resource"])


async def main() -> int:
    base = os.environ.get("X402_URL", "http://127.0.0.1:4020").rstrip("/")
    headers = {"Authorization": f"Bearer {os.environ['X402_KEY']}"} if os.environ.get("X402_KEY") else {}
    async with aiohttp.ClientSession(headers=headers) as session:
        resource = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RESOURCE") or await pick(session, base)
        body: dict[str, Any] = {"resource": resource, "maxAmount": os.environ.get("MAX_AMOUNT", "100000")}
        if os.environ.get("WALLET_ID"):
            body["wallet"] = os.environ["WALLET_ID"]
        async with session.post(base + "/v1/call", json=body) as r:
            status, text = r.status, await r.text()
            raw = r.headers.get("X402-Call-Receipt")
        receipt = json.loads(base64.b64decode(raw)) if raw else None
        async with session.get(base + "/v1/calls/summary") as r:
            summary = await r.json()
    print(json.dumps({"status": status, "body": text, "receipt": receipt, "usage": summary}, indent=2), flush=True)
    return 0 if status < 400 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
