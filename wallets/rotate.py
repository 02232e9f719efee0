"""Master key rotation: re-wrap every wallet key and webhook secret under the keyring's current key."""

from __future__ import annotations

import uuid

import asyncpg

from wallets import keys
from wallets.custody import Keyring, Sealed


async def rewrap_all(conn: asyncpg.Connection, keyring: Keyring) -> tuple[int, int]:
    """Re-seal, in one transaction, every ciphertext not under ``keyring.current``; returns (keys, webhooks)."""
    n_keys = n_hooks = 0
    async with conn.transaction():
        rows = await conn.fetch(
            "SELECT wallet_id, chain, key_id, nonce, ciphertext FROM wallet_keys WHERE key_id <> $1 FOR UPDATE",
            keyring.key_id,
        )
        for r in rows:
            new = keyring.rewrap(
                Sealed(r["key_id"], bytes(r["nonce"]), bytes(r["ciphertext"])), aad=keys.aad(r["wallet_id"], r["chain"])
            )
            await conn.execute(
                """UPDATE wallet_keys SET key_id = $3, nonce = $4, ciphertext = $5, rotated_at = now()
                   WHERE wallet_id = $1 AND chain = $2""",
                r["wallet_id"],
                r["chain"],
                new.key_id,
                new.nonce,
                new.ciphertext,
            )
            n_keys += 1
        hooks = await conn.fetch(
            "SELECT id, key_id, nonce, ciphertext FROM webhook_endpoints WHERE key_id <> $1 FOR UPDATE", keyring.key_id
        )
        for h in hooks:
            endpoint_id: uuid.UUID = h["id"]
            new = keyring.rewrap(
                Sealed(h["key_id"], bytes(h["nonce"]), bytes(h["ciphertext"])),
                aad=f"x402-webhook:{endpoint_id}".encode(),
            )
            await conn.execute(
                "UPDATE webhook_endpoints SET key_id = $2, nonce = $3, ciphertext = $4 WHERE id = $1",
                endpoint_id,
                new.key_id,
                new.nonce,
                new.ciphertext,
            )
            n_hooks += 1
    return n_keys, n_hooks
