"""Velocity: exact at the threshold across two processes sharing Redis, deduplicated per payment, in-process too."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from risk.velocity import MemoryVelocity, RedisVelocity
from tests.risk.helpers import ctx, memory_engine
from x402.cache import RedisCache

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.allow_blocking  # the test itself waits on subprocesses; the service code runs in them
def test_velocity_fires_exactly_at_threshold_across_two_processes(redis_url: str) -> None:
    payer, n, limit = "0x3333333333333333333333333333333333333333", 25, 30
    start_at = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.risk.velocity_worker",
                redis_url,
                payer,
                str(n),
                str(limit),
                str(start_at),
                tag,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        results += json.loads(out)
    counts = sorted(r["count"] for r in results)
    # every payment saw a distinct count: the Lua script serialises them across both processes
    assert counts == list(range(1, 2 * n + 1))
    flagged = [r for r in results if r["flagged"]]
    assert len(flagged) == 2 * n - limit  # fires from the (limit+1)-th payment on, not one earlier
    assert all(r["count"] > limit for r in flagged)


async def test_redis_velocity_dedupes_and_sums(redis_url: str) -> None:
    cache = RedisCache(redis_url)
    try:
        v = RedisVelocity(cache.client)
        now = time.time()
        a = await v.observe("payer1", "p1", 10**30, now)  # saturates instead of overflowing
        b = await v.observe("payer1", "p1", 10**30, now)  # the same payment again (settle after verify)
        c = await v.observe("payer1", "p2", 5, now)
        assert (a.count_1m, b.count_1m, c.count_1m, c.count_1h) == (1, 1, 2, 2)
        assert c.amount_1m == 2**63 - 1  # the bucket saturates
        later = await v.observe("payer1", "p3", 7, now + 120)  # two minutes on: out of the minute, in the hour
        assert (later.count_1m, later.count_1h, later.amount_1m) == (1, 3, 7)
    finally:
        await cache.close()


async def test_memory_velocity_windows() -> None:
    v = MemoryVelocity()
    now = 1_000_000.0
    for i in range(5):
        await v.observe("p", f"id{i}", 10, now + i)
    again = await v.observe("p", "id0", 10, now + 5)
    assert (again.count_1m, again.amount_1m) == (5, 50)
    later = await v.observe("p", "x", 1, now + 70)
    assert (later.count_1m, later.count_1h, later.amount_1h) == (1, 6, 51)
    assert (await v.observe("p", "y", 1, now + 4000)).count_1h == 1


async def test_engine_velocity_with_redis_and_memory(tmp_path: Path, redis_url: str) -> None:
    cfg = {"rules": {"velocity": {"max_per_minute": 3, "max_amount_per_hour": 1000}}}
    cache = RedisCache(redis_url)
    try:
        for c in (cache, None):
            engine, _ = await memory_engine(tmp_path, cfg, cache)
            payer = f"0x{'4' if c else '5'}{'0' * 39}"
            got = [await engine.assess(ctx(payer=payer, amount=300)) for _ in range(5)]
            flags = [{f.code for f in a.flags} for a in got]
            assert ["velocity_count_1m" in f for f in flags] == [False, False, False, True, True]
            assert ["velocity_amount_1h" in f for f in flags] == [False, False, False, True, True]
            assert got[3].recommendation == "require_confirmation"
    finally:
        await cache.close()
    await asyncio.sleep(0)
