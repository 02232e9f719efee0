"""Sign-In-With-X on the paywall, on anvil: pay once, then sign in (EOA, EIP-1271, ERC-6492, Solana ed25519)
instead of paying again; every rule refused with its reason code; nonces single-use; query and price bound."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address
from solders.keypair import Keypair

from chains.evm.devchain import DevChain, deploy_contract
from chains.evm.payer import EvmSigner
from chains.evm.siwx import RpcContractSignatures
from tests.harness import evm
from tests.paywall.conftest import make_offer, payer_client
from x402.client import PaymentPolicy, X402Client
from x402.paywall import SIGNED_IN, Paywall
from x402.paywall.siwx import SiwxConfig, price_version, purchase_key
from x402.service.app import create_app
from x402.service.appkeys import DB
from x402.service.facilitator.inprocess import AppFacilitator
from x402.service.settings import Settings
from x402.service.siwx_store import PgSiwxStore
from x402.wire import siwx
from x402.wire.codec import PAYMENT_REQUIRED, PAYMENT_RESPONSE, decode_payment_required

SOLANA = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"
MAGIC = bytes.fromhex("6492" * 16)


class Shop:
    """A provider app with Sign-In-With-X on /paid (and the other conftest routes)."""

    def __init__(self, client: Any, paywall: Paywall, pay_to: str, app: web.Application, seen: list[str]) -> None:
        self.client, self.paywall, self.pay_to, self.app, self.signed_in = client, paywall, pay_to, app, seen

    def url(self, path: str) -> str:
        return str(self.client.make_url(path))

    async def declaration(self, path: str = "/paid") -> dict[str, Any]:
        r = await self.client.get(path)
        assert r.status == 402
        ext = decode_payment_required(r.headers[PAYMENT_REQUIRED]).extensions
        assert isinstance(ext, dict)
        declared: dict[str, Any] = ext[siwx.KEY]
        return declared

    async def grant(self, address: str, path: str = "/paid", query: str = "") -> None:
        """Record an entitlement as a settlement of this route would."""
        (route,) = [r for (m, p), r in self.paywall.paid_routes if p == path]
        challenge = self.paywall.challenges.get(route, self.url(path))
        key = purchase_key("GET", path, query, price_version(challenge.requirements))
        await PgSiwxStore(self.app[DB]).record_entitlement(address, key, datetime.now(UTC) + timedelta(hours=1))


ShopFactory = Callable[..., Any]


@pytest.fixture
def make_shop(aiohttp_client: Any, devchain: DevChain, service_settings: Settings) -> ShopFactory:
    async def build(amount: int = 10_000, pay_to: str | None = None, **siwx_kw: Any) -> Shop:
        pay_to = pay_to or evm.address_of(evm.new_key())
        app = create_app(service_settings)
        seen: list[str] = []

        async def who(request: web.Request) -> web.Response:
            seen.append(request.get(SIGNED_IN, ""))
            return web.json_response({"ok": True})

        app.router.add_get("/paid", who)
        app.router.add_get("/who", who)
        contracts = RpcContractSignatures.from_urls({devchain.network: (devchain.rpc_url,)})
        config = SiwxConfig(PgSiwxStore(lambda: app[DB]), contract_signatures=contracts, **siwx_kw)
        offer = make_offer(devchain, pay_to, amount)
        paywall = Paywall(
            AppFacilitator(app), routes={("GET", "/paid"): [offer], ("GET", "/who"): [offer]}, siwx=config
        )
        paywall.setup(app)

        async def close(app: web.Application) -> None:
            await contracts.close()

        app.on_cleanup.append(close)
        return Shop(await aiohttp_client(app), paywall, pay_to, app, seen)

    return build


def _payload(declared: dict[str, Any], address: str, chain_id: str, **changes: Any) -> siwx.SiwxPayload:
    info = {**declared["info"], **changes}
    return msgspec.convert(
        {**info, "address": address, "chainId": chain_id, "type": siwx.signature_type(chain_id), "signature": ""},
        siwx.SiwxPayload,
    )


def _eoa_header(declared: dict[str, Any], key: str, chain_id: str, **changes: Any) -> str:
    p = _payload(declared, evm.address_of(key), chain_id, **changes)
    p.signature = "0x" + bytes(Account.sign_message(encode_defunct(text=siwx.message(p)), key).signature).hex()
    return siwx.encode_header(p)


def _error(r: Any) -> str:
    assert r.status == 402, r.status
    error = decode_payment_required(r.headers[PAYMENT_REQUIRED]).error
    assert isinstance(error, str)
    return error


async def test_pay_once_then_sign_in_with_the_same_key(
    make_shop: ShopFactory, devchain: DevChain, payer_key: str, http: aiohttp.ClientSession
) -> None:
    shop = await make_shop()
    declared = await shop.declaration()
    info = declared["info"]
    assert info["domain"] == f"127.0.0.1:{shop.client.port}"
    assert info["uri"] == shop.url("/paid")
    assert len(info["nonce"]) == 32
    assert info["version"] == "1"
    assert declared["supportedChains"] == [{"chainId": devchain.network, "type": "eip191"}]
    assert (await shop.declaration())["info"]["nonce"] != info["nonce"]  # fresh per 402

    # signing in before paying: no entitlement
    r = await shop.client.get("/paid", headers={siwx.HEADER: _eoa_header(declared, payer_key, devchain.network)})
    assert _error(r) == siwx.NO_ENTITLEMENT

    paid = await payer_client(http, devchain, payer_key).get(shop.url("/paid"))
    assert paid.status == 200
    assert paid.settlement is not None
    assert paid.settlement.success
    balance = await evm.token_balance(devchain, shop.pay_to)

    header = _eoa_header(await shop.declaration(), payer_key, devchain.network)
    r = await shop.client.get("/paid", headers={siwx.HEADER: header})
    assert r.status == 200, await r.text()
    assert PAYMENT_RESPONSE not in r.headers
    assert await evm.token_balance(devchain, shop.pay_to) == balance  # nothing paid
    # the same signed message again: the nonce is spent
    r = await shop.client.get("/paid", headers={siwx.HEADER: header})
    assert _error(r) == siwx.NONCE_REUSED
    # another key (never paid) signs correctly: refused
    r = await shop.client.get("/paid", headers={siwx.HEADER: _eoa_header(declared, evm.new_key(), devchain.network)})
    assert _error(r) == siwx.NO_ENTITLEMENT
    # another query string is another purchase
    r = await shop.client.get("/paid?page=2", headers={siwx.HEADER: _eoa_header(declared, payer_key, devchain.network)})
    assert _error(r) == siwx.NO_ENTITLEMENT


async def test_a_new_price_needs_a_new_payment(
    make_shop: ShopFactory, devchain: DevChain, payer_key: str, http: aiohttp.ClientSession
) -> None:
    pay_to = evm.address_of(evm.new_key())
    old = await make_shop(10_000, pay_to)
    paid = await payer_client(http, devchain, payer_key).get(old.url("/paid"))
    assert paid.status == 200
    same = await make_shop(10_000, pay_to)  # same offers, another app on the same database: same price version
    r = await same.client.get("/paid", headers={siwx.HEADER: _eoa_header(await same.declaration(), payer_key,
                                                                          devchain.network)})  # fmt: skip
    assert r.status == 200, await r.text()
    dearer = await make_shop(20_000, pay_to)
    r = await dearer.client.get("/paid", headers={siwx.HEADER: _eoa_header(await dearer.declaration(), payer_key,
                                                                            devchain.network)})  # fmt: skip
    assert _error(r) == siwx.NO_ENTITLEMENT


async def test_every_rule_has_its_reason_code(make_shop: ShopFactory, devchain: DevChain) -> None:
    shop = await make_shop(max_age=120)
    key = evm.new_key()
    await shop.grant(evm.address_of(key).lower())
    now = datetime.now(UTC)
    net = devchain.network
    cases: dict[str, dict[str, Any]] = {
        siwx.DOMAIN_MISMATCH: {"domain": "evil.example"},
        siwx.URI_MISMATCH: {"uri": "https://evil.example/paid"},
        siwx.INVALID_ISSUED_AT: {"issuedAt": "yesterday"},
        siwx.ISSUED_AT_TOO_OLD: {"issuedAt": siwx.iso(now - timedelta(seconds=600))},
        siwx.ISSUED_AT_IN_FUTURE: {"issuedAt": siwx.iso(now + timedelta(seconds=600))},
        siwx.EXPIRED: {"expirationTime": siwx.iso(now - timedelta(seconds=1))},
        siwx.INVALID_EXPIRATION: {"expirationTime": "soon"},
        siwx.INVALID_NOT_BEFORE: {"notBefore": "later"},
        siwx.NOT_YET_VALID: {"notBefore": siwx.iso(now + timedelta(seconds=600))},
    }
    for code, change in cases.items():
        header = _eoa_header(await shop.declaration(), key, net, **change)
        r = await shop.client.get("/paid", headers={siwx.HEADER: header})
        assert _error(r) == code, change
    declared = await shop.declaration()
    r = await shop.client.get("/paid", headers={siwx.HEADER: _eoa_header(declared, key, "eip155:1")})
    assert _error(r) == siwx.UNSUPPORTED_CHAIN
    forged = _payload(declared, evm.address_of(key), net)
    forged.signature = "0x" + bytes(Account.sign_message(encode_defunct(text="other"), key).signature).hex()
    r = await shop.client.get("/paid", headers={siwx.HEADER: siwx.encode_header(forged)})
    assert _error(r) == siwx.INVALID_SIGNATURE
    for junk in ("not base64!", base64.b64encode(b'{"domain": 1}').decode(), base64.b64encode(b"[]").decode()):
        r = await shop.client.get("/paid", headers={siwx.HEADER: junk})
        assert _error(r) == siwx.INVALID_HEADER
    # and the good one passes, with the signer named to the handler
    r = await shop.client.get("/paid", headers={siwx.HEADER: _eoa_header(await shop.declaration(), key, net)})
    assert r.status == 200, await r.text()


@pytest.mark.slow
async def test_contract_wallets_sign_in(make_shop: ShopFactory, devchain: DevChain) -> None:
    shop = await make_shop()
    owner_key = evm.new_key()
    owner = evm.address_of(owner_key)
    deployer = evm.new_key()
    await evm.fund_eth(devchain, evm.address_of(deployer))
    wallet = await deploy_contract(devchain.rpc_url, deployer, "MockERC1271Wallet", owner)
    factory = await deploy_contract(devchain.rpc_url, deployer, "WalletFactory")
    salt = secrets.token_bytes(32)
    data = keccak(b"addressOf(address,bytes32)")[:4] + abi_encode(["address", "bytes32"], [owner, salt])
    out = await evm.rpc(devchain.rpc_url, "eth_call", {"to": factory, "data": "0x" + data.hex()}, "latest")
    counterfactual = to_checksum_address("0x" + out[-40:])
    for address in (wallet, counterfactual):
        await shop.grant(address.lower())

    def owner_signed(p: siwx.SiwxPayload) -> bytes:
        return bytes(Account.sign_message(encode_defunct(text=siwx.message(p)), owner_key).signature)

    # EIP-1271: the deployed wallet's isValidSignature accepts its owner's signature
    p = _payload(await shop.declaration(), wallet, devchain.network)
    p.signature = "0x" + owner_signed(p).hex()
    r = await shop.client.get("/paid", headers={siwx.HEADER: siwx.encode_header(p)})
    assert r.status == 200, await r.text()
    # a stranger's signature for the same wallet is refused
    p = _payload(await shop.declaration(), wallet, devchain.network)
    p.signature = (
        "0x" + bytes(Account.sign_message(encode_defunct(text=siwx.message(p)), evm.new_key()).signature).hex()
    )
    r = await shop.client.get("/paid", headers={siwx.HEADER: siwx.encode_header(p)})
    assert _error(r) == siwx.INVALID_SIGNATURE

    # ERC-6492: a wallet not deployed yet, its signature wrapped with the factory call that would deploy it
    assert await evm.rpc(devchain.rpc_url, "eth_getCode", counterfactual, "latest") in ("0x", "0x0")
    p = _payload(await shop.declaration(), counterfactual, devchain.network)
    calldata = keccak(b"createAccount(address,bytes32)")[:4] + abi_encode(["address", "bytes32"], [owner, salt])
    wrapped = abi_encode(["address", "bytes", "bytes"], [factory, calldata, owner_signed(p)]) + MAGIC
    p.signature = "0x" + wrapped.hex()
    r = await shop.client.get("/paid", headers={siwx.HEADER: siwx.encode_header(p)})
    assert r.status == 200, await r.text()
    assert await evm.rpc(devchain.rpc_url, "eth_getCode", counterfactual, "latest") in ("0x", "0x0")  # nothing kept
    p = _payload(await shop.declaration(), counterfactual, devchain.network)
    bad = abi_encode(["address", "bytes", "bytes"], [factory, calldata, b"\x01" * 65]) + MAGIC
    p.signature = "0x" + bad.hex()
    r = await shop.client.get("/paid", headers={siwx.HEADER: siwx.encode_header(p)})
    assert _error(r) == siwx.INVALID_SIGNATURE


async def test_solana_sign_in_with_ed25519(make_shop: ShopFactory, devchain: DevChain) -> None:
    shop = await make_shop(chains=(devchain.network, SOLANA))
    declared = await shop.declaration()
    assert declared["supportedChains"][1] == {"chainId": SOLANA, "type": "ed25519"}
    kp = Keypair()
    address = str(kp.pubkey())
    await shop.grant(address)

    def signed(by: Keypair, **changes: Any) -> str:
        p = _payload(declared, address, SOLANA, **changes)
        text = siwx.message(p)
        assert text.startswith(
            f"127.0.0.1:{shop.client.port} wants you to sign in with your Solana account:\n" + address + "\n\n"
        )
        p.signature = str(by.sign_message(text.encode()))
        return siwx.encode_header(p)

    r = await shop.client.get("/paid", headers={siwx.HEADER: signed(Keypair())})
    assert _error(r) == siwx.INVALID_SIGNATURE
    r = await shop.client.get("/paid", headers={siwx.HEADER: signed(kp)})
    assert r.status == 200, await r.text()
    # our client's Solana signer answers the same declaration (it picks the Solana entry: no EVM key here)
    from chains.solana.signer import SvmSigner
    from x402.client.siwx import sign_in_header

    made = sign_in_header({siwx.KEY: await shop.declaration()}, [SvmSigner(kp, {})])
    assert made is not None
    assert made[1] == address
    r = await shop.client.get("/paid", headers={siwx.HEADER: made[0]})
    assert r.status == 200, await r.text()


async def test_our_client_signs_in_after_paying(
    make_shop: ShopFactory, devchain: DevChain, payer_key: str, http: aiohttp.ClientSession
) -> None:
    shop = await make_shop()
    client = payer_client(http, devchain, payer_key)
    first = await client.get(shop.url("/who"))
    assert first.status == 200
    assert first.paid is not None
    assert first.signed_in is None
    balance = await evm.token_balance(devchain, shop.pay_to)
    again = await client.get(shop.url("/who"))
    assert again.status == 200, again.text()
    assert (again.signed_in, again.paid) == (evm.address_of(payer_key), None)
    assert await evm.token_balance(devchain, shop.pay_to) == balance
    assert shop.signed_in == ["", evm.address_of(payer_key).lower()]  # the paid run, then the signed-in one

    # a fresh client that paid in an earlier life signs in when told to ("always")
    fresh = X402Client(http, [EvmSigner(payer_key)], PaymentPolicy(allowed_assets=[devchain.token_address]),
                       sign_in="always")  # fmt: skip
    assert (await fresh.get(shop.url("/who"))).signed_in == evm.address_of(payer_key)
    # a key that never paid is refused and pays instead, in one go
    other = await evm.funded_payer(devchain)
    newcomer = payer_client(http, devchain, other)
    newcomer.sign_in = "always"
    paid = await newcomer.get(shop.url("/who"))
    assert paid.status == 200
    assert paid.paid is not None
    assert paid.signed_in is None
    assert json.loads(paid.text()) == {"ok": True}


async def test_official_client_pays_then_signs_in(make_shop: ShopFactory, devchain: DevChain, payer_key: str) -> None:
    """@x402/fetch pays, then @x402/extensions' wrapFetchWithSIWx (2.27) signs in to our paywall with the key."""
    from tests.harness.node import run_node

    shop = await make_shop()
    stranger = await run_node("siwx_fetch.mjs", shop.url("/paid"), env={"PAYER_KEY": evm.new_key()})
    assert (stranger["status"], stranger["error"]) == (402, siwx.NO_ENTITLEMENT), stranger
    paid = await run_node("fetch_pay.mjs", shop.url("/paid"), env={"PAYER_KEY": payer_key})
    assert paid["status"] == 200, paid
    assert paid["paymentResponse"]["success"] is True
    balance = await evm.token_balance(devchain, shop.pay_to)
    signed = await run_node("siwx_fetch.mjs", shop.url("/paid"), env={"PAYER_KEY": payer_key})
    assert signed == {"status": 200, "body": {"ok": True}, "error": None}
    assert await evm.token_balance(devchain, shop.pay_to) == balance
    assert shop.signed_in[-1] == evm.address_of(payer_key).lower()


OFFICIAL_PYTHON = Path(__file__).resolve().parents[1] / "interop" / ".venv-x402" / "bin" / "python"


async def test_official_python_sdk_signs_in(make_shop: ShopFactory, devchain: DevChain, payer_key: str) -> None:
    """PyPI x402 2.25 (its own venv, scripts/bootstrap) builds the SIGN-IN-WITH-X header; our paywall accepts it."""
    assert OFFICIAL_PYTHON.exists(), "run scripts/bootstrap (it creates tests/interop/.venv-x402)"
    shop = await make_shop()
    await shop.grant(evm.address_of(payer_key).lower())
    r = await shop.client.get("/paid")
    required = decode_payment_required(r.headers[PAYMENT_REQUIRED])
    stdin = json.dumps({"extensions": required.extensions, "url": shop.url("/paid"), "privateKey": payer_key})
    proc = await asyncio.create_subprocess_exec(
        str(OFFICIAL_PYTHON),
        str(OFFICIAL_PYTHON.parents[2] / "siwx_sign.py"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(OFFICIAL_PYTHON.parents[2]),
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 25)
    assert proc.returncode == 0, err.decode()
    header = json.loads(out.decode().strip().splitlines()[-1])["header"]
    r = await shop.client.get("/paid", headers={siwx.HEADER: header})
    assert r.status == 200, await r.text()
    assert shop.signed_in[-1] == evm.address_of(payer_key).lower()
