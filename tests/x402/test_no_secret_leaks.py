"""Secrets never leak: every log line of a full ``x402 serve --dev`` scenario and every problem+json body is
searched for API keys, wallet private keys, the master key, webhook secrets and full payment signatures."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import aiohttp
import asyncpg
import pytest

from chains.evm.devchain import DEV_KEYS, DevChain
from tests.harness import evm
from tests.harness.procs import x402_serve
from tests.harness.services import free_port, hook_receiver
from wallets import datakeys, keys
from wallets.custody import Keyring
from x402.service.demo import DEMO_PATH
from x402.wire.codec import PAYMENT_SIGNATURE, encode_header

ADMIN = "operator-token-" + secrets.token_hex(16)
MASTER = secrets.token_hex(32)


class Recorder:
    """Calls the service and keeps every problem+json body it answers."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base
        self.problems: list[str] = []
        self.bodies: list[tuple[str, str]] = []

    async def call(self, method: str, path: str, *, key: str | None = None, **kw: Any) -> tuple[int, Any]:
        headers = dict(kw.pop("headers", {}))
        if key:
            headers["Authorization"] = f"Bearer {key}"
        async with self.session.request(method, self.base + path, headers=headers, **kw) as r:
            text = await r.text()
            self.bodies.append((path, text))
            if r.content_type == "application/problem+json":
                self.problems.append(text)
            try:
                return r.status, json.loads(text)
            except ValueError:
                return r.status, text


async def _wallet_secrets(database_url: str) -> list[str]:
    """Every wallet private key in the database, opened with the master key (what must never be printed)."""
    master = Keyring.parse(MASTER)
    out: list[str] = []
    conn = await asyncpg.connect(database_url)
    try:
        for row in await conn.fetch("SELECT wallet_id, chain FROM wallet_keys"):
            opened = await datakeys.wallet_key(conn, master, row["wallet_id"], row["chain"])
            assert opened is not None
            keyring, sealed = opened
            out.append(keyring.unseal(sealed, aad=keys.aad(row["wallet_id"], row["chain"])).hex())
        sigs = [
            r["sig"]
            for r in await conn.fetch("SELECT payload->'payload'->>'signature' AS sig FROM settlements")
            if r["sig"]
        ]
    finally:
        await conn.close()
    return out + sigs


async def _raw(base_url: str, request: str) -> None:
    """Send bytes the HTTP parser refuses (what a client with a mangled header sends)."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request.encode("latin-1"))
    await writer.drain()
    await reader.read(4096)
    writer.close()


def _forms(secret: str) -> set[str]:
    """The ways a secret could be printed: as given, without 0x, either case."""
    bare = secret.removeprefix("0x")
    return {secret, bare, bare.lower(), bare.upper()} if len(bare) >= 16 else {secret}


@pytest.mark.slow
async def test_full_dev_scenario_prints_no_secret(database_url: str, redis_url: str) -> None:
    server, deliveries = await hook_receiver()
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "X402_DEV_ANVIL_PORT": str(free_port()),
        "X402_LOG_LEVEL": "debug",
        "X402_LOG_FORMAT": "json",
        "X402_ADMIN_TOKEN": ADMIN,
        "X402_MASTER_KEY": MASTER,
        "X402_ALLOW_PRIVATE_OUTBOUND": "true",
    }
    leaked: list[str] = [ADMIN, MASTER, DEV_KEYS[0]]  # DEV_KEYS[0]: the dev facilitator's signing key
    try:
        async with x402_serve("--dev", env=env, port=free_port()) as svc, aiohttp.ClientSession() as session:
            api = Recorder(session, svc.base_url)
            status, manifest = await api.call("GET", "/.well-known/x402")
            dev = manifest["dev"]
            chain = DevChain(rpc_url=dev["rpcUrl"])

            # tenant, keys (created, rotated, one wrong key presented)
            status, tenant = await api.call("POST", "/v1/tenants", key=ADMIN, json={"name": "leaky"})
            assert status == 201, tenant
            status, made = await api.call(
                "POST",
                f"/v1/tenants/{tenant['id']}/keys",
                key=ADMIN,
                json={"scopes": ["verify", "settle", "wallets", "registry", "admin"]},
                headers={"Idempotency-Key": "k1"},
            )
            assert status == 201, made
            key = made["key"]
            status, rotated = await api.call("POST", f"/v1/keys/{made['id']}/rotate", key=ADMIN, json={})
            leaked += [key, key.split("_", 3)[3]]  # x402_<mode>_<prefix>_<secret>: the secret may hold "_" itself
            key = rotated["key"]
            leaked += [key, key.split("_", 3)[3]]
            await api.call("POST", "/verify", key=key[:-3] + "zzz", json={})
            await api.call("POST", "/verify", key="x402_live_" + "a" * 10 + "_" + "b" * 43, json={})
            # a key pasted with a stray control character: the HTTP parser refuses the header line (and quotes it)
            await _raw(svc.base_url, f"POST /verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\x01\r\n\r\n")
            await _raw(svc.base_url, f"GET /v1/wallets HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\x7f\r\n\r\n")

            # risk lists loaded
            status, _ = await api.call(
                "POST", "/v1/risk/lists/deny", key=key, json={"addresses": ["0x" + "ab" * 20], "label": "test"}
            )
            assert status == 200

            # wallets: one generated, one imported (its key is known), both funded, paying the demo route
            imported = evm.new_key()
            leaked.append(imported)
            status, bad = await api.call(
                "POST", "/v1/wallets", key=key, json={"chains": ["evm"], "import": {"evm": imported[:-2] + "zz"}}
            )
            assert status == 422, bad
            wallets = []
            body: dict[str, Any]  # a wallet request here, a facilitator request below
            for body in ({"chains": ["evm"]}, {"chains": ["evm"], "import": {"evm": imported}}):
                status, w = await api.call("POST", "/v1/wallets", key=key, json={"name": "w", "policy": {}, **body})
                assert status == 201, w
                await evm.mint(chain, w["addresses"]["evm"], 10**9)
                wallets.append(w)

            # webhooks signed and delivered
            status, hook = await api.call("POST", "/v1/webhooks", key=key, json={"url": str(server.make_url("/hook"))})
            assert status == 201, hook
            leaked.append(hook["secret"])
            for w in wallets:
                status, paid = await api.call(
                    "POST", f"/v1/wallets/{w['id']}/pay", key=key, json={"url": svc.base_url + DEMO_PATH}
                )
                assert status == 200, paid
            # an agent key for a wallet
            status, agent = await api.call("POST", f"/v1/wallets/{wallets[0]['id']}/agent-keys", key=key, json={})
            assert status == 201, agent
            leaked.append(agent["key"])

            # facilitator verify/settle with payment signatures; a tampered one is refused
            payer = dev["payers"][0]
            leaked.append(payer["privateKey"])
            for _ in range(2):
                payment = evm.sign_payment(chain, payer["privateKey"], evm.requirements(chain, dev["demo"]["payTo"]))
                body = payment.body()
                leaked.append(body["paymentPayload"]["payload"]["signature"])
                status, out = await api.call("POST", "/verify", key=key, json=body)
                assert out.get("isValid") is True, out
                status, out = await api.call("POST", "/settle", key=key, json=body)
                assert out.get("success") is True, out
            tampered = evm.sign_payment(chain, payer["privateKey"], evm.requirements(chain, dev["demo"]["payTo"]))
            tbody = tampered.body()
            sig = tbody["paymentPayload"]["payload"]["signature"]
            tbody["paymentPayload"]["payload"]["signature"] = sig[:-4] + (
                "0000" if not sig.endswith("0000") else "1111"
            )
            leaked += [sig, tbody["paymentPayload"]["payload"]["signature"]]
            await api.call("POST", "/settle", key=key, json=tbody)
            # the paywall: a tampered payment, and a header that is not base64 JSON (both logged, both refused)
            demo = svc.base_url + DEMO_PATH
            demo_req = evm.requirements(chain, dev["demo"]["payTo"], int(dev["demo"]["amount"]))
            wrong = evm.sign_payment(chain, payer["privateKey"], demo_req, value=1)
            leaked.append(wrong.payload.payload["signature"])
            for header in (encode_header(wrong.payload), "!" + encode_header(wrong.payload)[1:]):
                async with session.get(demo, headers={PAYMENT_SIGNATURE: header}) as r:
                    assert r.status in (400, 402), await r.text()
            bad_shape = {**body, "paymentPayload": {**body["paymentPayload"], "payload": {"signature": sig}}}
            await api.call("POST", "/verify", key=key, json=bad_shape)
            await api.call("POST", "/verify", key=key, data=json.dumps(body)[:-5], headers={"Content-Type": "x"})

            # wait for the webhook deliveries, then let the worker log what it does
            for _ in range(200):
                if len(deliveries) >= 2:
                    break
                await asyncio.sleep(0.05)
            assert len(deliveries) >= 2
            leaked += [h["X402-Signature"].split("v1=")[1] for h, _ in deliveries]
            # a suspended tenant's refusal, reactivation, export: the lifecycle paths print nothing secret either
            await api.call("POST", f"/v1/tenants/{tenant['id']}/suspend", key=ADMIN)
            await api.call("POST", "/verify", key=key, json=body)
            await api.call("POST", f"/v1/tenants/{tenant['id']}/reactivate", key=ADMIN)
            status, export = await api.call("GET", f"/v1/tenants/{tenant['id']}/export", key=ADMIN)
            assert status == 200
        leaked += await _wallet_secrets(database_url)
    finally:
        await server.close()

    leaked = [s for s in leaked if s]
    lines = svc.output
    logs = [line for line in lines if line.lstrip().startswith("{")]
    assert len(logs) > 10, "the scenario should have logged plenty"
    banner = [line for line in lines if line not in logs]
    for secret in leaked:
        for form in _forms(secret):
            hits = [line for line in logs if form in line]
            assert not hits, f"a secret appears in log lines: {[h.replace(form, '<SECRET>') for h in hits[:3]]}"
            hits = [p for p in api.problems if form in p]
            assert not hits, f"a secret appears in problem bodies: {[h.replace(form, '<SECRET>') for h in hits[:3]]}"
            # the banner prints the dev key on purpose, nothing else secret
            assert not [line for line in banner if form in line], "a secret appears in the start-up banner"
    assert export.count("\n") > 5
    assert MASTER not in export
    assert len(api.problems) >= 5
