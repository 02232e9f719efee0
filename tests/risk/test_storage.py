"""Postgres-backed risk: rule documents with audit, address lists, payer history from settlements, Redis baselines."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from risk.build import RiskOptions, build_engine
from risk.config import InvalidRiskConfig
from risk.expr import RuleSyntaxError
from risk.history import PgPayerHistory
from risk.stats import RedisStats
from risk.store import PgRiskStore
from tests.risk.helpers import PAY_TO, PAYER, ctx
from x402.cache import RedisCache


async def _settle(pool: asyncpg.Pool, payer: str, pay_to: str, nonce: str, status: str = "confirmed") -> None:
    await pool.execute(
        """INSERT INTO settlements (network, asset, payer, nonce, payload_hash, status, pay_to, amount, x402_version,
                                    payload, requirements)
           VALUES ('eip155:8453', '0xa', $1, $2, '\\x00', $3, $4, 10000, 2, '{}', '{}')""",
        payer,
        nonce,
        status,
        pay_to,
    )


async def test_rule_documents_are_validated_versioned_and_audited(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        store = PgRiskStore(pool)
        doc = {"rules": {"velocity": {"max_per_minute": 5}}, "custom": [{"name": "x", "when": "amount > 5"}]}
        assert await store.put_config("t1", doc, actor="alice") == 1
        doc2 = {"rules": {"velocity": {"enabled": False}}}
        assert await store.put_config("t1", doc2, actor="bob") == 2
        assert await store.get_config("t1") == doc2
        assert await store.get_config(None) is None
        with pytest.raises(RuleSyntaxError):
            await store.put_config("t1", {"custom": [{"name": "bad", "when": "__import__('os')"}]}, actor="eve")
        with pytest.raises(InvalidRiskConfig):
            await store.put_config("t1", {"rules": {"velocity": {"max_per_minute": -1}}}, actor="eve")
        trail = await store.audit_trail("t1")
        assert [(r.actor, r.action) for r in trail] == [("bob", "risk.config.put"), ("alice", "risk.config.put")]
        assert trail[0].before == doc
        assert trail[0].after == doc2
        assert await store.add_addresses("t1", "deny", [PAYER, PAYER.lower()], actor="alice") == 1
        assert (
            await store.add_addresses(None, "deny", ["0xAbC0000000000000000000000000000000000000"], actor="root") == 1
        )
        lists = await store.lists_for("t1")
        assert lists.get("deny") == {PAYER.lower(), "0xabc0000000000000000000000000000000000000"}
        assert (await store.lists_for("t2")).get("deny") == {"0xabc0000000000000000000000000000000000000"}
        assert await store.remove_addresses("t1", "deny", [PAYER], actor="alice") == 1
        assert (await store.audit_trail("t1"))[0].action == "risk.list.remove"
        with pytest.raises(InvalidRiskConfig):
            await store.add_addresses("t1", "nonsense", [PAYER], actor="alice")
    finally:
        await pool.close()


async def test_engine_on_postgres_and_redis(database_url: str, redis_url: str, tmp_path: Path) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    cache = RedisCache(redis_url)
    try:
        engine = await build_engine(RiskOptions(data_dir=tmp_path, config_ttl=0.0), pool, cache)
        assert isinstance(engine.stats, RedisStats)
        first = await engine.assess(ctx())
        assert {f.code for f in first.flags} == {"first_time_payer"}
        assert "never paid anywhere" in first.flags[0].message
        await _settle(pool, PAYER.lower(), "0x9999999999999999999999999999999999999999", "n1")
        await _settle(pool, PAYER.lower(), PAY_TO, "n2", status="failed")  # only confirmed ones count
        assert isinstance(engine.history, PgPayerHistory)
        engine.history._cache.clear()
        c = ctx()
        second = await engine.assess(c)
        assert "1 settlements elsewhere" in second.flags[0].message
        assert c.facts["payer_settlements"] == 1
        assert c.facts["first_time"] is True
        await _settle(pool, PAYER.lower(), PAY_TO, "n3")
        await engine.record(ctx())  # invalidates the cached answer
        c = ctx()
        assert {f.code for f in (await engine.assess(c)).flags} == set()
        assert c.facts["payer_pay_to_settlements"] == 1
        # baselines in Redis: ten settled amounts, then an outlier
        for amt in [10_000, 10_100, 9_900, 10_050, 9_950, 10_000, 10_020, 9_980, 10_010, 9_990]:
            await engine.record(ctx(amount=amt))
        outlier = await engine.assess(ctx(amount=30_000))
        assert "amount_anomaly_payto" in {f.code for f in outlier.flags}
        normal = await engine.assess(ctx(amount=10_150))
        assert not any(f.code.startswith("amount_anomaly") for f in normal.flags)
        # tenant rules from Postgres reach the engine
        assert engine.store is not None
        await engine.store.put_config(
            "t9", {"custom": [{"name": "nope", "when": "amount > 1", "action": "block"}]}, actor="admin"
        )
        assert (await engine.assess(ctx(tenant_id="t9"))).blocked
        assert not (await engine.assess(ctx(tenant_id="t8"))).blocked
    finally:
        await cache.close()
        await pool.close()


@pytest.mark.parametrize("doc", [{"rules": None}, {"rules": []}, {"rules": 0}, {"custom": {}}, {"custom": None}])
def test_rules_and_custom_of_the_wrong_type_are_refused(doc: dict[str, object]) -> None:
    """An empty value of the wrong type is not an empty rule document (the OpenAPI schema says object / array)."""
    from risk.config import parse_config

    with pytest.raises(InvalidRiskConfig):
        parse_config(doc)


def test_integral_numbers_are_integers_like_in_json_schema() -> None:
    from risk.config import parse_config

    config = parse_config({"rules": {"velocity": {"max_per_minute": 5.0}}})
    assert config.rules["velocity"].params["max_per_minute"] == 5
    with pytest.raises(InvalidRiskConfig):
        parse_config({"rules": {"velocity": {"max_per_minute": 5.5}}})
