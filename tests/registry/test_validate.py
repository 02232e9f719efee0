"""POST /v1/resources/validate against real local origins: good and broken listings, each check's reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.harness import evm
from tests.harness.services import free_port
from tests.registry.test_crawl import _origin
from x402.service.app import create_app
from x402.service.settings import Settings


def _reasons(report: dict[str, Any]) -> dict[str, Any]:
    return {name: c["ok"] or c.get("reason") for name, c in report["checks"].items()}


async def test_validate_good_and_broken_listings(aiohttp_client: Any, aiohttp_server: Any, settings: Settings) -> None:
    key = evm.new_key()
    _, origin = await _origin(aiohttp_server, key)
    _, wrong_origin = await _origin(aiohttp_server, key, proof_key=evm.new_key())
    client = await aiohttp_client(create_app(settings))

    async def validate(url: str, **kw: Any) -> dict[str, Any]:
        r = await client.post("/v1/resources/validate", json={"url": url, **kw})
        body: dict[str, Any] = await r.json()
        assert r.status == 200, body
        return body

    good = await validate(origin + "/paid/weather")
    assert good["valid"] is True
    assert _reasons(good) == dict.fromkeys(("reachable", "answers402", "parses", "bazaar", "ownership"), True)
    assert good["checks"]["ownership"]["proven"] == {evm.address_of(key): "eip191"}
    assert good["httpStatus"] == 402

    v1 = await validate(origin + "/paid/translate", method="post")
    assert (v1["valid"], v1["method"]) == (True, "POST")

    cases = {
        "/free": {"reachable": True, "answers402": "not_402", "parses": "skipped"},
        "/broken": {"reachable": True, "answers402": "server_error"},
        "/paid/decimal": {"answers402": True, "parses": "decimal_amount", "bazaar": "skipped"},
        "/paid/nobazaar": {"parses": True, "bazaar": "missing_bazaar_extension", "ownership": True},
        "/paid/badbazaar": {"parses": True, "bazaar": "invalid_input_type", "ownership": True},
    }
    for path, expected in cases.items():
        report = await validate(origin + path)
        assert report["valid"] is False, path
        got = _reasons(report)
        assert {k: got[k] for k in expected} == expected, (path, got)

    wrong = await validate(wrong_origin + "/paid/weather")
    assert _reasons(wrong)["ownership"] == "invalid_ownership_proof"

    dead = await validate(f"http://127.0.0.1:{free_port()}/paid")
    assert _reasons(dead) == {
        "reachable": "unreachable",
        "answers402": "skipped",
        "parses": "skipped",
        "bazaar": "skipped",
        "ownership": "skipped",
    }

    r = await client.post("/v1/resources/validate", json={"url": "ftp://x.example/a"})
    assert (r.status, (await r.json())["code"]) == (400, "invalid_url")
    r = await client.post("/v1/resources/validate", json={"url": origin + "/paid/weather", "method": "BREW"})
    assert (r.status, (await r.json())["code"]) == (400, "invalid_method")


async def test_validate_refuses_private_addresses(aiohttp_client: Any, database_url: str, tmp_path: Path) -> None:
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        log_level="warning",
        reconcile_interval=0,
        registry_probe_interval=0,
    )
    client = await aiohttp_client(create_app(settings))
    r = await client.post("/v1/resources/validate", json={"url": "http://127.0.0.1:9/paid"})
    assert r.status == 400
    assert (await r.json())["code"] == "private_address"
