"""Walk ``/openapi.json`` with an all-scopes API key and hostile values in every parameter and body field: no 5xx.

Hostile values: NUL bytes, huge strings, wrong JSON types, nesting deeper than the limit (200 levels here, so a
regression cannot crash pytest itself; the 100,000-level documents go to a subprocess in
tests/x402/test_hostile_json.py), negative and huge numbers, non-canonical amounts. Every operation gets a
plausible base body first, then one field at a time is replaced, so validation deeper than the first check runs.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import pytest

from tests.harness.hostile import (
    HOSTILE_BODIES,
    HOSTILE_JSON,
    HOSTILE_STRINGS,
    deep_array,
    json_bytes,
    leaves,
    replaced,
)
from tests.harness.runner import ServiceTestServer
from tests.platform.conftest import VERIFY_BODY, new_key, new_tenant, op
from tests.registry.conftest import resource
from x402.service.app import create_app
from x402.service.settings import Settings

POLICY = {"totalBudget": "1000000", "perPaymentCap": "1000", "allowedUrls": ["https://x/*"], "autoPause": {}}
#: Plausible bodies per operation (fields the handlers read); the documented schemas are mostly ``object``.
BASES: dict[tuple[str, str], Any] = {
    ("post", "/verify"): VERIFY_BODY,
    ("post", "/settle"): VERIFY_BODY,
    ("post", "/v1/payments/verify-tx"): {
        "network": "eip155:84532",
        "transaction": "0x" + "ab" * 32,
        "payTo": "0x" + "11" * 20,
        "asset": "0x" + "22" * 20,
        "minAmount": "1",
        "confirmations": 1,
    },
    ("post", "/v1/tenants"): {"name": "fuzz", "tier": "free"},
    ("patch", "/v1/tenants/{id}"): {"tier": "pro", "status": "active", "name": "n"},
    ("post", "/v1/tenants/{id}/keys"): {"scopes": ["verify"], "mode": "test", "name": "k"},
    ("post", "/v1/keys/{id}/rotate"): {"gracePeriodSeconds": 10},
    ("post", "/v1/resources"): resource("https://fuzz.example/r"),
    ("patch", "/v1/resources/{id}"): {"description": "d", "tags": ["a"], "accepts": resource("https://a.b")["accepts"]},
    ("post", "/v1/resources/{id}/ratings"): {"rating": 5},
    ("post", "/v1/resources/import"): {"origin": "https://fuzz.invalid"},
    ("post", "/v1/wallets"): {"name": "w", "chains": ["evm"], "policy": POLICY, "import": {}},
    ("put", "/v1/wallets/{id}/policy"): POLICY,
    ("post", "/v1/wallets/{id}/pause"): {"reason": "r"},
    ("post", "/v1/wallets/{id}/pay"): {
        "url": "https://fuzz.invalid/x",
        "method": "GET",
        "headers": {"A": "b"},
        "body": "x",
        "maxAmount": "10",
        "approvalId": str(uuid.uuid4()),
    },
    ("post", "/v1/webhooks"): {"url": "https://hooks.example.com/hook", "events": ["payment.settled"]},
    ("put", "/v1/risk/rules"): {"rules": [{"name": "r", "when": "amount > 5", "action": "review"}], "largeAmount": "7"},
    ("post", "/v1/risk/lists/{name}"): {"addresses": ["0x" + "33" * 20], "label": "l"},
    ("delete", "/v1/risk/lists/{name}"): {"addresses": ["0x" + "33" * 20]},
}
#: Operations that end the fuzzing identity or its fixtures: run last, on their own ids.
LAST = {("delete", "/v1/keys/{id}"), ("delete", "/v1/resources/{id}"), ("delete", "/v1/webhooks/{id}")}


class Fuzzer:
    """Sends the requests and remembers every 5xx."""

    def __init__(self, client: Any, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers
        self.failures: list[str] = []
        self.sent = 0

    async def send(self, method: str, url: str, body: bytes | None = None, headers: Any = None) -> None:
        h = {**self.headers, **(headers or {})}
        if body is not None:
            h["Content-Type"] = "application/json"
        r = await self.client.request(method, url, data=body, headers=h)
        text = await r.text()
        self.sent += 1
        if r.status >= 500:
            self.failures.append(f"{method} {url[:120]} body={(body or b'')[:120]!r} -> {r.status} {text[:300]}")
        elif r.status >= 400:
            assert r.content_type == "application/problem+json", (method, url[:100], r.status, text[:200])
            assert (await r.json())["code"], (method, url[:100])


@pytest.fixture
async def client(psettings: Settings, aiohttp_client: Any) -> Any:
    """The platform app with wallets enabled (a master key); outbound requests to private addresses refused."""
    return await aiohttp_client(ServiceTestServer(create_app(psettings.with_(master_key="ab" * 32))))


@pytest.mark.slow
async def test_openapi_fuzz_finds_no_5xx(client: Any) -> None:
    doc = await (await client.get("/openapi.json")).json()
    tenant = await new_tenant(client, "fuzzer", tier="enterprise")
    key = await new_key(client, tenant, ["verify", "settle", "wallets", "registry", "admin"])
    spare = await new_key(client, tenant, ["verify"])
    headers = {"Authorization": f"Bearer {key['key']}"}
    fz = Fuzzer(client, headers)

    # real ids, so the per-field fuzzing reaches past "not found"
    r = await client.post("/v1/wallets", json=BASES[("post", "/v1/wallets")], headers=headers)
    assert r.status == 201, await r.text()
    wallet = (await r.json())["id"]
    r = await client.post("/v1/resources", json=BASES[("post", "/v1/resources")], headers=headers)
    assert r.status == 201, await r.text()
    res = (await r.json())["id"]
    r = await client.post("/v1/webhooks", json={"url": "https://hooks.example.com/hook"}, headers=headers)
    assert r.status == 201, await r.text()
    hook = (await r.json())["id"]
    ids = {
        "/v1/tenants/": tenant,
        "/v1/keys/": spare["id"],
        "/v1/resources/": res,
        "/v1/wallets/": wallet,
        "/v1/webhooks/": hook,
        "/v1/payments/": str(uuid.uuid4()),
    }

    def path_with(template: str, name: str | None = None, value: str | None = None) -> str:
        out = template
        for prefix, real in ids.items():
            if template.startswith(prefix):
                out = out.replace("{id}", quote(value, safe="") if name == "id" and value is not None else real)
        out = out.replace("{aid}", quote(value, safe="") if name == "aid" and value is not None else str(uuid.uuid4()))
        out = out.replace("{name}", quote(value, safe="") if name == "name" and value is not None else "deny")
        if name == "id" and value is not None and "{id}" in template and out == template:
            out = out.replace("{id}", quote(value, safe=""))
        return out

    ops = [(m, p, o) for p, item in doc["paths"].items() for m, o in item.items()]
    ops.sort(key=lambda t: (t[0], t[1]) in LAST)
    for method, template, operation in ops:
        params = operation.get("parameters", [])
        base = BASES.get((method, template), {} if "requestBody" in operation else None)
        base_bytes = None if base is None else json_bytes(base)
        url = path_with(template)
        # path and query parameters
        for p in params:
            for value in HOSTILE_STRINGS:
                if p["in"] == "path":
                    await fz.send(method, path_with(template, p["name"], value), base_bytes)
                elif p["in"] == "query":
                    await fz.send(method, f"{url}?{p['name']}={quote(value, safe='')}", base_bytes)
                elif p["in"] == "header" and "\x00" not in value and value.isascii():
                    await fz.send(method, url, base_bytes, {p["name"]: value[:20_000] or "x"})
        if base is None:
            continue
        # whole hostile bodies, then one field at a time
        for raw in HOSTILE_BODIES:
            await fz.send(method, url, raw)
        for value in HOSTILE_JSON:
            await fz.send(method, url, json_bytes(value))
        for path in leaves(base):
            for value in [*HOSTILE_JSON, "DEEP"]:
                if value == "DEEP":
                    body = json_bytes(replaced(base, path, "@@")).replace(b'"@@"', deep_array())
                else:
                    body = json_bytes(replaced(base, path, value))
                await fz.send(method, url, body)

    assert fz.sent > 5_000
    assert not fz.failures, "\n".join(fz.failures[:40]) + f"\n({len(fz.failures)} 5xx of {fz.sent})"
    # the fuzzing identity still works, and the operator's view agrees nothing broke
    assert (await client.get("/healthz")).status == 200
    assert (await client.get(f"/v1/tenants/{tenant}", headers=op())).status == 200


async def test_named_holes_are_400_with_a_code(client: Any) -> None:
    tenant = await new_tenant(client, "holes", tier="enterprise")
    key = await new_key(client, tenant, ["verify", "settle", "wallets", "registry", "admin"])
    headers = {"Authorization": f"Bearer {key['key']}"}
    for policy in ([], ["totalBudget"], "budget", 5, True):
        r = await client.post("/v1/wallets", json={"name": "w", "policy": policy}, headers=headers)
        assert r.status == 400, await r.text()
        assert (await r.json())["code"] == "invalid_policy"
    r = await client.put(f"/v1/wallets/{uuid.uuid4()}/policy", data=b"[1]", headers=headers)
    assert r.status in (400, 404)
    for query in ("payer=%00abc", "payTo=a%00", "status=%00", "cursor=%00"):
        r = await client.get(f"/v1/payments?{query}", headers=headers)
        assert r.status == 400, (query, await r.text())
        assert (await r.json())["code"] == "nul_character"
    r = await client.get("/discovery/search?query=%00", headers=headers)
    assert (r.status, (await r.json())["code"]) == (400, "nul_character")
    # a NUL inside a JSON string never reaches Postgres either
    r = await client.post("/v1/wallets", data=b'{"name":"w\\u0000"}', headers=headers)
    assert (r.status, (await r.json())["code"]) == (400, "nul_character")
    # amounts have one spelling
    r = await client.post("/v1/wallets", json={"name": "w", "policy": {"totalBudget": "010000"}}, headers=headers)
    assert (r.status, (await r.json())["code"]) == (422, "invalid_policy")
    r = await client.post("/v1/wallets", json={"name": "w", "policy": {"totalBudget": 10000}}, headers=headers)
    assert (r.status, (await r.json())["code"]) == (422, "invalid_policy")
    r = await client.post("/v1/wallets", json={"name": "w", "policy": {"totalBudget": "10000"}}, headers=headers)
    assert r.status == 201, await r.text()
    wallet = (await r.json())["id"]
    for max_amount in ("010000", 10000, "-1", "1e4"):
        body = {"url": "https://fuzz.invalid/x", "maxAmount": max_amount}
        r = await client.post(f"/v1/wallets/{wallet}/pay", json=body, headers=headers)
        assert (r.status, (await r.json())["code"]) == (400, "invalid_amount"), max_amount
