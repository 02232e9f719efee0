"""POST /v1/resources/import against a real local origin; probes, ownership proofs, dead resources, prober."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestServer

from tests.harness import evm
from tests.harness.services import free_port
from tests.registry.conftest import resource
from tests.registry.origin import origin_app, sign_origin
from x402.service.app import create_app
from x402.service.settings import Settings


async def _origin(aiohttp_server: Any, key: str, proof_key: str | None = None) -> tuple[TestServer, str]:
    proofs: list[str] = []
    server = await aiohttp_server(origin_app(evm.address_of(key), proofs))
    origin = str(server.make_url("/")).rstrip("/")
    # the proof signs the origin, which is only known once the server listens (the app reads the list per request)
    proofs.append(sign_origin(proof_key or key, origin))
    return server, origin


def _by_path(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["resource"].split("/", 3)[3]: r for r in report["resources"]}


async def test_import_verifies_resources_with_evidence(
    aiohttp_client: Any, aiohttp_server: Any, settings: Settings
) -> None:
    key = evm.new_key()
    _, origin = await _origin(aiohttp_server, key)
    client = await aiohttp_client(create_app(settings))
    r = await client.post("/v1/resources/import", json={"origin": origin + "/ignored/path"})
    report = await r.json()
    assert r.status == 200, report
    assert report["origin"] == origin
    assert report["sources"] == {"wellKnown": True, "openapi": True}
    assert report["skipped"] == [{"entry": "https://elsewhere.example/x", "reason": "cross_origin"}]
    got = _by_path(report)
    assert set(got) == {"paid/weather", "paid/translate", "paid/decimal", "paid/nobazaar", "free"}
    assert (got["paid/weather"]["verificationStatus"], got["paid/weather"]["method"]) == ("verified", "GET")
    assert got["paid/weather"]["evidence"]["ownership"]["proven"] == {evm.address_of(key): "eip191"}
    assert got["paid/weather"]["evidence"]["probe"]["transport"] == "header"
    assert got["paid/translate"]["verificationStatus"] == "verified"  # v1 body, POST from the listing
    assert got["paid/translate"]["evidence"]["probe"]["transport"] == "body"
    assert (got["paid/decimal"]["verificationStatus"], got["paid/decimal"]["verificationReason"]) == (
        "failed",
        "decimal_amount",
    )
    assert got["paid/nobazaar"]["verificationReason"] == "missing_input_schema"
    assert got["free"]["verificationReason"] == "not_402"
    assert "id" not in got["paid/decimal"]  # nothing usable to list
    assert "id" not in got["free"]
    assert report["verified"] == 2

    r = await client.get(f"/v1/resources/{got['paid/weather']['id']}")
    stored = await r.json()
    assert stored["source"] == "crawl"
    assert stored["serviceName"] == "Weather"
    assert (stored["status"], stored["uptime"]) == ("up", 1.0)
    assert stored["inputSchema"]["type"] == "http"
    r = await client.get(f"/v1/resources/{got['paid/translate']['id']}")
    translate = await r.json()
    assert (translate["x402Version"], translate["method"]) == (1, "POST")
    assert "eip155:84532" in translate["networks"]

    r = await client.get("/discovery/search", params={"query": "weather"})
    found = [i["resource"] for i in (await r.json())["resources"]]
    assert found == [origin + "/paid/weather"]  # the failed one (missing_input_schema) is not listed


async def test_wrong_ownership_proof_is_rejected(aiohttp_client: Any, aiohttp_server: Any, settings: Settings) -> None:
    key = evm.new_key()
    _, origin = await _origin(aiohttp_server, key, proof_key=evm.new_key())
    client = await aiohttp_client(create_app(settings))
    r = await client.post("/v1/resources/import", json={"origin": origin})
    got = _by_path(await r.json())
    for path in ("paid/weather", "paid/translate"):
        assert (got[path]["verificationStatus"], got[path]["verificationReason"]) == (
            "failed",
            "invalid_ownership_proof",
        )
        assert got[path]["evidence"]["ownership"]["valid"] is False


async def test_dead_resource_is_marked_down_unreachable(aiohttp_client: Any, settings: Settings) -> None:
    from x402.service.appkeys import OUTBOUND, REGISTRY
    from x402.service.registry.prober import probe_due

    app = create_app(settings)
    client = await aiohttp_client(app)
    r = await client.post("/v1/resources", json=resource(f"http://127.0.0.1:{free_port()}/gone"))
    rid = (await r.json())["id"]
    r = await client.post(f"/v1/resources/{rid}/verify")
    dead = await r.json()
    assert r.status == 200, dead
    assert (dead["status"], dead["downReason"]) == ("down", "unreachable")
    assert (dead["verification"]["status"], dead["verification"]["reason"]) == ("failed", "unreachable")
    assert dead["probes"] == {"ok": 0, "total": 1}

    # the periodic prober: due again at once with a 0 s interval
    assert await probe_due(app[REGISTRY], app[OUTBOUND], every=0.0) == 1
    r = await client.get(f"/v1/resources/{rid}")
    after = await r.json()
    assert (after["status"], after["downReason"], after["probes"]["total"]) == ("down", "unreachable", 2)


async def test_import_refuses_private_origins_unless_allowed(aiohttp_client: Any, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings.with_(allow_private_outbound=False)))
    for origin in ("http://127.0.0.1:9", "http://localhost:9", "http://192.168.1.1"):
        r = await client.post("/v1/resources/import", json={"origin": origin})
        assert (r.status, (await r.json())["code"]) == (400, "private_address"), origin
    r = await client.post("/v1/resources/import", json={"origin": "gopher://x"})
    assert (r.status, (await r.json())["code"]) == (400, "invalid_url")


async def test_import_of_a_closed_port_is_502(aiohttp_client: Any, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    r = await client.post("/v1/resources/import", json={"origin": f"http://127.0.0.1:{free_port()}"})
    body = await r.json()
    assert (r.status, body["code"]) == (502, "upstream_unreachable"), body
