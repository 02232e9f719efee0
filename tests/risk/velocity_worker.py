"""One service process's risk stage hitting shared Redis (run by test_velocity as a subprocess)."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from risk.engine import RiskEngine
from risk.model import RiskContext
from risk.store import MemoryRiskStore
from risk.velocity import RedisVelocity, VelocityRule
from x402.cache import RedisCache


async def main(url: str, payer: str, n: int, limit: int, start_at: float, tag: str) -> None:
    cache = RedisCache(url)
    store = MemoryRiskStore()
    await store.put_config(None, {"rules": {"velocity": {"max_per_minute": limit, "max_per_hour": 10**6}}}, actor="t")
    engine = RiskEngine([VelocityRule(RedisVelocity(cache.client))], store=store, infer_intents=False)
    await cache.ping()  # connect before the start line
    await asyncio.sleep(max(0.0, start_at - time.time()))
    ctxs = [
        RiskContext("eip155:8453", "0xa", payer, "0xb", 100, payment_id=f"{tag}-{i}", timestamp=time.time())
        for i in range(n)
    ]
    results = await asyncio.gather(*(engine.assess(c) for c in ctxs))
    out = [
        {"count": c.facts["velocity_1m"], "flagged": any(f.code == "velocity_count_1m" for f in a.flags)}
        for c, a in zip(ctxs, results, strict=True)
    ]
    print(json.dumps(out))
    await cache.close()


if __name__ == "__main__":
    url, payer, n, limit, start_at, tag = sys.argv[1:7]
    asyncio.run(main(url, payer, int(n), int(limit), float(start_at), tag))
