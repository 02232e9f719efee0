"""A sanctioned address from an SDN file in the real format is blocked on verify, on settle and on wallet pay."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from chains.evm.devchain import DevChain
from risk.cli import main as risk_cli
from tests.harness import evm
from tests.harness.paychain import EvmChain
from tests.wallets.conftest import ServiceFactory, Upstream, new_wallet, pay
from x402.service.app import create_app


@pytest.fixture
def chain(devchain: DevChain) -> EvmChain:
    """On anvil: the sanctions lists and the facilitator's screening are about EVM addresses."""
    return EvmChain(devchain)


def _sdn_csv(path: Path, *addresses: str) -> Path:
    """An OFAC sdn.csv excerpt: addresses in the remarks column, as the Treasury publishes them."""
    rows = [
        f'{990000 + i},"TEST SANCTIONED PARTY {i}","-0- ","CYBER2","-0- ","-0- ","-0- ","-0- ","-0- ","-0- ","-0- ",'
        f'"Digital Currency Address - ETH {addr}; alt. Digital Currency Address - USDC {addr}; Gender Male."'
        for i, addr in enumerate(addresses)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


async def _load_list(tmp_path: Path, *addresses: str) -> Path:
    data_dir = tmp_path / "data"
    sdn = _sdn_csv(tmp_path / "sdn.csv", *addresses)
    argv = ["update-lists", "--file", str(sdn), "--data-dir", str(data_dir), "--version", "2026-11-20"]
    assert await asyncio.to_thread(risk_cli, argv) == 0
    return data_dir


async def test_sanctioned_payer_blocked_on_verify_and_settle(
    database_url: str, aiohttp_client: Any, devchain: DevChain, tmp_path: Path
) -> None:
    payer_key = await evm.funded_payer(devchain)
    payer = evm.address_of(payer_key)
    data_dir = await _load_list(tmp_path, payer.lower())
    signer = evm.new_key()
    await evm.fund_eth(devchain, evm.address_of(signer))
    client = await aiohttp_client(create_app(evm.chain_settings(devchain, database_url, signer, data_dir=data_dir)))
    pay_to = evm.address_of(evm.new_key())
    payment = evm.sign_payment(devchain, payer_key, evm.requirements(devchain, pay_to, 1_000))

    r = await client.post("/verify", json=payment.body())
    out = await r.json()
    assert out["isValid"] is False
    assert out["invalidReason"] == "risk_blocked"
    risk = out["extensions"]["risk"]
    assert risk["recommendation"] == "block"
    assert risk["level"] == "critical"
    assert [f["code"] for f in risk["flags"] if f["severity"] == "critical"] == ["sanctioned_payer"]
    assert risk["listVersions"]["sdn"] == "2026-11-20"

    r = await client.post("/settle", json=payment.body())
    out = await r.json()
    assert out["success"] is False
    assert out["errorReason"] == "risk_blocked"
    assert out["transaction"] == ""
    assert await evm.token_balance(devchain, pay_to) == 0

    # the same list does not touch an unrelated payer
    clean = evm.sign_payment(devchain, await evm.funded_payer(devchain), evm.requirements(devchain, pay_to, 1_000))
    r = await client.post("/settle", json=clean.body())
    assert (await r.json())["success"] is True


async def test_wallet_never_pays_a_sanctioned_pay_to(
    upstream: Upstream, wallet_service: ServiceFactory, devchain: DevChain, chain: EvmChain, tmp_path: Path
) -> None:
    data_dir = await _load_list(tmp_path, upstream.pay_to)
    client = await wallet_service(data_dir=data_dir)
    wallet = await new_wallet(client, chain)
    status, body = await pay(client, wallet["id"], upstream.base_url + "/paid")
    assert status == 403, body
    assert body["code"] == "payee_blocked"
    assert "OFAC" in body["detail"]
    assert await evm.token_balance(devchain, upstream.pay_to) == 0
    assert await evm.token_balance(devchain, wallet["addresses"]["evm"]) == 10**9
