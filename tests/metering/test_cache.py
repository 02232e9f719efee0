"""The entitlement cache's lifetime rules: long while listening, never past the answer's billing period, bounded."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from x402.service.metering import cache as cache_mod
from x402.service.metering.cache import TTL, EntitlementCache


def answer(end: datetime) -> dict[str, object]:
    return {"period": {"start": "2026-01-01T00:00:00Z", "end": end.isoformat().replace("+00:00", "Z")}}


def test_an_answer_never_outlives_its_period_and_lives_long_while_listening() -> None:
    cache = EntitlementCache(None)
    cache.listening.set()
    far = datetime.now(UTC) + timedelta(days=20)
    cache.put("t", "long", answer(far))
    cache.put("t", "ending", answer(datetime.now(UTC) + timedelta(seconds=1)))
    cache.put("t", "ended", answer(datetime.now(UTC) - timedelta(seconds=1)))
    assert cache.get("t", "long") is not None
    assert cache.get("t", "ended") is None  # the month rolled over: usage starts from zero
    until = cache._entries[("t", "ending")][0] - time.monotonic()
    assert 0 < until <= 1.0
    assert cache._entries[("t", "long")][0] - time.monotonic() > TTL - 5
    cache.listening.clear()
    cache.put("t", "long", answer(far))
    assert cache._entries[("t", "long")][0] - time.monotonic() <= cache_mod.UNLISTENED_TTL


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_mod, "MAX_ENTRIES", 3)
    cache = EntitlementCache(None)
    far = answer(datetime.now(UTC) + timedelta(days=20))
    for c in ("a", "b", "c", "d"):
        cache.put("t", c, far)
    assert len(cache._entries) == 3
    assert cache.get("t", "a") is None  # the oldest went first
    assert cache.get("t", "d") is not None
