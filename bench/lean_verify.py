"""The lean /verify: the smallest correct x402 v2 ``exact`` EIP-3009 verify, the baseline bench/verify.py compares to.

A bare aiohttp app, its own code (nothing from x402/ or chains/): parse the JSON body, check the fields correctness
needs (scheme, network, asset, payTo, amount, the validAfter/validBefore window), the EIP-712 digest with the domain
separator cached per (chain, token), coincurve recovery (the signer must be ``authorization.from``), then ONE
``eth_call`` simulating ``transferWithAuthorization`` on the node over one persistent aiohttp session (a revert, e.g.
a used nonce or a short balance, is ``isValid: false``). No database, no records, no risk, no logging per request:
what is left is the floor of the work, so ``ours / lean`` says how much of it our extras cost.

Usage: ``python bench/lean_verify.py --port P --rpc-url URL --chain-id N --token ADDRESS --name "USD Coin"
--version 2``; ``GET /healthz`` answers once the node answers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import coincurve
import uvloop
from aiohttp import web
from eth_hash.auto import keccak

DOMAIN_TYPEHASH = keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
TRANSFER_TYPEHASH = keccak(
    b"TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,"
    b"bytes32 nonce)"
)
# transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)
TRANSFER_SELECTOR = keccak(
    b"transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)"
)[:4]
SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
UINT256_MAX = 2**256 - 1

CONFIG: web.AppKey[Config] = web.AppKey("lean_config")
RPC: web.AppKey[Rpc] = web.AppKey("lean_rpc")


class Invalid(Exception):
    """A payment that is not valid; ``reason`` goes into ``invalidReason``."""

    def __init__(self, reason: str, payer: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.payer = payer


class Config:
    """The one network and token this server verifies, with the token's EIP-712 domain separator computed once."""

    def __init__(self, chain_id: int, token: str, name: str, version: str) -> None:
        self.chain_id = chain_id
        self.network = f"eip155:{chain_id}"
        self.token = token.lower()
        self.token_bytes = bytes.fromhex(self.token[2:])
        self._domains: dict[tuple[int, bytes, str, str], bytes] = {}
        self.name = name
        self.version = version

    def domain_separator(self, name: str, version: str) -> bytes:
        """Cached per (chain, token, name, version): a keccak of five words computed once, not per request."""
        key = (self.chain_id, self.token_bytes, name, version)
        found = self._domains.get(key)
        if found is None:
            found = keccak(
                DOMAIN_TYPEHASH
                + keccak(name.encode())
                + keccak(version.encode())
                + self.chain_id.to_bytes(32, "big")
                + self.token_bytes.rjust(32, b"\0")
            )
            self._domains[key] = found
        return found


class Rpc:
    """JSON-RPC over one persistent aiohttp session (keep-alive connections to the node)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64), timeout=aiohttp.ClientTimeout(total=10)
        )
        self._ids = itertools.count(1)

    async def call(self, to: str, data: bytes) -> tuple[bool, str]:
        """``eth_call`` at latest: (succeeded, result or error message)."""
        body = {
            "jsonrpc": "2.0",
            "id": next(self._ids),
            "method": "eth_call",
            "params": [{"to": to, "data": "0x" + data.hex()}, "latest"],
        }
        async with self.session.post(self.url, json=body) as resp:
            doc = await resp.json(content_type=None)
        if "error" in doc:
            return False, str(doc["error"].get("message", doc["error"]))
        return True, str(doc.get("result", ""))

    async def close(self) -> None:
        """Close the session."""
        await self.session.close()


def _address(value: Any) -> bytes:
    if not isinstance(value, str) or len(value) != 42 or value[:2] not in ("0x", "0X"):
        raise Invalid("invalid_payload")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise Invalid("invalid_payload") from None


def _uint(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Invalid("invalid_payload")
    try:
        n = int(value)
    except ValueError:
        raise Invalid("invalid_payload") from None
    if not 0 <= n <= UINT256_MAX:
        raise Invalid("invalid_payload")
    return n


def _bytes(value: Any, size: int) -> bytes:
    if not isinstance(value, str) or value[:2] not in ("0x", "0X") or len(value) != 2 + 2 * size:
        raise Invalid("invalid_payload")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise Invalid("invalid_payload") from None


def checksum(raw: bytes) -> str:
    """EIP-55 spelling of a 20-byte address."""
    hexa = raw.hex()
    digest = keccak(hexa.encode()).hex()
    return "0x" + "".join(c.upper() if int(digest[i], 16) >= 8 else c for i, c in enumerate(hexa))


def _parts(body: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """requirements, accepted, the scheme payload and its authorization (all JSON objects) of a v2 request."""
    if not isinstance(body, dict):
        raise Invalid("invalid_payload")
    payload = body.get("paymentPayload")
    req = body.get("paymentRequirements")
    if not isinstance(payload, dict) or not isinstance(req, dict) or payload.get("x402Version") != 2:
        raise Invalid("invalid_payload")
    accepted = payload.get("accepted")
    inner = payload.get("payload")
    if not isinstance(accepted, dict) or not isinstance(inner, dict):
        raise Invalid("invalid_payload")
    auth = inner.get("authorization")
    if not isinstance(auth, dict):
        raise Invalid("invalid_payload")
    return req, accepted, inner, auth


async def verify(config: Config, rpc: Rpc, body: Any) -> str:
    """The payer's address when the payment is valid; raises Invalid otherwise."""
    req, accepted, inner, auth = _parts(body)
    if req.get("scheme") != "exact" or accepted.get("scheme") != "exact":
        raise Invalid("unsupported_scheme")
    if req.get("network") != config.network or accepted.get("network") != config.network:
        raise Invalid("invalid_network")
    if str(req.get("asset", "")).lower() != config.token or str(accepted.get("asset", "")).lower() != config.token:
        raise Invalid("invalid_exact_evm_asset")
    sender = _address(auth.get("from"))
    to = _address(auth.get("to"))
    if to != _address(req.get("payTo")) or to != _address(accepted.get("payTo")):
        raise Invalid("invalid_exact_evm_payload_recipient_mismatch")
    value = _uint(auth.get("value"))
    if value != _uint(req.get("amount")) or _uint(accepted.get("amount")) != value:
        raise Invalid("invalid_exact_evm_payload_authorization_value")
    valid_after = _uint(auth.get("validAfter"))
    valid_before = _uint(auth.get("validBefore"))
    now = int(time.time())
    if valid_before < now + 6:  # room for the settle transaction to be mined
        raise Invalid("invalid_exact_evm_payload_authorization_valid_before")
    if valid_after > now:
        raise Invalid("invalid_exact_evm_payload_authorization_valid_after")
    nonce = _bytes(auth.get("nonce"), 32)
    sig = _bytes(inner.get("signature"), 65)
    r, s, v = sig[:32], sig[32:64], sig[64]
    if v < 27:
        v += 27
    if v not in (27, 28) or int.from_bytes(s, "big") > SECP256K1_HALF_N:
        raise Invalid("invalid_exact_evm_payload_signature")
    extra = req.get("extra")
    if not isinstance(extra, dict):
        extra = {}
    domain = config.domain_separator(str(extra.get("name", config.name)), str(extra.get("version", config.version)))
    struct = keccak(
        TRANSFER_TYPEHASH
        + sender.rjust(32, b"\0")
        + to.rjust(32, b"\0")
        + value.to_bytes(32, "big")
        + valid_after.to_bytes(32, "big")
        + valid_before.to_bytes(32, "big")
        + nonce
    )
    digest = keccak(b"\x19\x01" + domain + struct)
    payer = checksum(sender)
    try:
        public = coincurve.PublicKey.from_signature_and_message(r + s + bytes([v - 27]), digest, hasher=None)
    except Exception:
        raise Invalid("invalid_exact_evm_payload_signature", payer) from None
    if keccak(public.format(compressed=False)[1:])[-20:] != sender:
        raise Invalid("invalid_exact_evm_payload_signature", payer)
    # the node decides the rest (nonce unused, balance, token rules): one simulation of the transfer itself
    data = (
        TRANSFER_SELECTOR
        + sender.rjust(32, b"\0")
        + to.rjust(32, b"\0")
        + value.to_bytes(32, "big")
        + valid_after.to_bytes(32, "big")
        + valid_before.to_bytes(32, "big")
        + nonce
        + v.to_bytes(32, "big")
        + r
        + s
    )
    try:
        ok, _ = await rpc.call(config.token, data)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        raise Invalid("unexpected_verify_error", payer) from None
    if not ok:
        raise Invalid("invalid_transaction_state", payer)
    return payer


def _json(doc: dict[str, Any]) -> web.Response:
    """A 200 JSON answer."""
    return web.Response(body=json.dumps(doc, separators=(",", ":")).encode(), content_type="application/json")


async def post_verify(request: web.Request) -> web.Response:
    """Verify one payment: 200 with ``isValid`` either way (400 only when the body is not JSON)."""
    try:
        body = json.loads(await request.read())
    except ValueError:
        return web.Response(status=400, body=b'{"error":"invalid_json"}', content_type="application/json")
    try:
        payer = await verify(request.app[CONFIG], request.app[RPC], body)
    except Invalid as exc:
        doc: dict[str, Any] = {"isValid": False, "invalidReason": exc.reason}
        if exc.payer:
            doc["payer"] = exc.payer
        return _json(doc)
    return _json({"isValid": True, "payer": payer})


async def healthz(request: web.Request) -> web.Response:
    """Liveness."""
    return _json({"ok": True})


def make_app(rpc_url: str, config: Config) -> web.Application:
    """The lean app: POST /verify and GET /healthz."""
    app = web.Application()
    app[CONFIG] = config

    async def rpc_ctx(app: web.Application) -> AsyncIterator[None]:
        app[RPC] = Rpc(rpc_url)
        yield
        await app[RPC].close()

    app.cleanup_ctx.append(rpc_ctx)
    app.router.add_post("/verify", post_verify)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    p = argparse.ArgumentParser(description="The lean x402 /verify baseline (exact EVM EIP-3009).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rpc-url", required=True)
    p.add_argument("--chain-id", type=int, required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--name", default="USD Coin")
    p.add_argument("--version", default="2")
    args = p.parse_args()
    config = Config(args.chain_id, args.token, args.name, args.version)
    web.run_app(
        make_app(args.rpc_url, config),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),  # as `x402 serve` runs
    )


if __name__ == "__main__":
    main()
