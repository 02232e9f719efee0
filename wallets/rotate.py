"""Master key rotation: re-wrap every wallet key and webhook secret under the keyring's current key."""

from __future__ import annotations

import uuid

import asyncpg

from wallets import datakeys, keys
from wallets.custody import Keyring, Sealed


async def rewrap_all(conn: asyncpg.Connection, keyring: Keyring) -> tuple[int, int]:
    """Re-seal, in one transaction, every ciphertext not under ``keyring.current``; returns (keys, webhooks).

    Tenant wallet keys sit under their tenant's data key, so only the data keys are re-wrapped (counted as keys);
    tenant keys still under the master key move under their tenant's data key.
    """
    n_keys = n_hooks = 0
    async with conn.transaction():
        n_keys += await datakeys.move_under_deks(conn, keyring)
        rows = await conn.fetch(
            "SELECT wallet_id, chain, key_id, nonce, ciphertext FROM wallet_keys WHERE key_id <> $1 AND dek_id IS NULL"
            " FOR UPDATE",
            keyring.key_id,
        )
        for r in rows:
            new = keyring.rewrap(Sealed.from_row(r), aad=keys.aad(r["wallet_id"], r["chain"]))
            await datakeys.reseal_wallet_key(conn, r["wallet_id"], r["chain"], new, None)
            n_keys += 1
        deks = await conn.fetch(
            "SELECT id, tenant_id, key_id, nonce, ciphertext FROM tenant_data_keys WHERE key_id <> $1 FOR UPDATE",
            keyring.key_id,
        )
        for d in deks:
            new = keyring.rewrap(Sealed.from_row(d), aad=datakeys.dek_aad(d["tenant_id"]))
            await conn.execute(
                "UPDATE tenant_data_keys SET key_id = $2, nonce = $3, ciphertext = $4 WHERE id = $1",
                d["id"],
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
                Sealed.from_row(h),
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
        # the previous secret of a rotation still in its overlap window signs too
        prev = await conn.fetch(
            """SELECT id, prev_key_id AS key_id, prev_nonce AS nonce, prev_ciphertext AS ciphertext
               FROM webhook_endpoints WHERE prev_key_id IS NOT NULL AND prev_key_id <> $1 FOR UPDATE""",
            keyring.key_id,
        )
        for h in prev:
            new = keyring.rewrap(Sealed.from_row(h), aad=f"x402-webhook:{h['id']}".encode())
            await conn.execute(
                "UPDATE webhook_endpoints SET prev_key_id = $2, prev_nonce = $3, prev_ciphertext = $4 WHERE id = $1",
                h["id"],
                new.key_id,
                new.nonce,
                new.ciphertext,
            )
    return n_keys, n_hooks
