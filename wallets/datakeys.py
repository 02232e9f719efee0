"""Per-tenant data keys (DEKs): each tenant's wallet keys are sealed under its own DEK, the DEK under the master key.

Destroying a tenant's DEK row crypto-shreds every wallet key it sealed: the ciphertext (say, in a backup) then stays
undecryptable even to someone holding the master key.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

from wallets import keys
from wallets.custody import CustodyError, Keyring, Sealed
from wallets.events import Conn

#: Serialises DEK creation per tenant across processes (the unique index makes a race fail loudly otherwise).
DEK_LOCK = 0x78344445


def dek_aad(tenant_id: uuid.UUID) -> bytes:
    """Associated data binding a sealed DEK to its tenant."""
    return f"x402-tenant-dek:{tenant_id}".encode()


@dataclass(frozen=True, slots=True)
class DataKey:
    """An opened DEK (in memory only) and its row id."""

    id: uuid.UUID
    keyring: Keyring


async def open_dek(conn: Conn, master: Keyring, tenant_id: uuid.UUID, *, create: bool) -> DataKey | None:
    """The tenant's DEK, created (sealed under the master key) when missing and ``create`` is set."""
    row = await conn.fetchrow("SELECT * FROM tenant_data_keys WHERE tenant_id = $1", tenant_id)
    if row is None and create:
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", DEK_LOCK, str(tenant_id))
        row = await conn.fetchrow("SELECT * FROM tenant_data_keys WHERE tenant_id = $1", tenant_id)
        if row is None:
            dek = os.urandom(32)
            sealed = master.seal(dek, aad=dek_aad(tenant_id))
            row = await conn.fetchrow(
                """INSERT INTO tenant_data_keys (id, tenant_id, key_id, nonce, ciphertext)
                   VALUES ($1, $2, $3, $4, $5) RETURNING *""",
                uuid.uuid4(),
                tenant_id,
                sealed.key_id,
                sealed.nonce,
                sealed.ciphertext,
            )
    if row is None:
        return None
    dek = master.unseal(Sealed.from_row(row), aad=dek_aad(tenant_id))
    return DataKey(row["id"], Keyring(dek))


async def wallet_key(conn: Conn, master: Keyring, wallet_id: uuid.UUID, chain: str) -> tuple[Keyring, Sealed] | None:
    """The keyring that opens one stored wallet key (the tenant's DEK, or the master key) and its ciphertext."""
    row = await conn.fetchrow(
        """SELECT k.key_id, k.nonce, k.ciphertext, k.dek_id, w.tenant_id, d.id AS dek_row
           FROM wallet_keys k JOIN wallets w ON w.id = k.wallet_id
           LEFT JOIN tenant_data_keys d ON d.id = k.dek_id
           WHERE k.wallet_id = $1 AND k.chain = $2""",
        wallet_id,
        chain,
    )
    if row is None:
        return None
    sealed = Sealed.from_row(row)
    if row["dek_id"] is None:
        return master, sealed
    if row["dek_row"] is None:
        raise CustodyError("the tenant's data key was destroyed: this wallet key cannot be opened")
    dek = await open_dek(conn, master, row["tenant_id"], create=False)
    if dek is None or dek.id != row["dek_id"]:
        raise CustodyError("the tenant's data key was destroyed: this wallet key cannot be opened")
    return dek.keyring, sealed


async def reseal_wallet_key(
    conn: Conn, wallet_id: uuid.UUID, chain: str, sealed: Sealed, dek_id: uuid.UUID | None
) -> None:
    """Store a wallet key's new ciphertext (under the master key when ``dek_id`` is None, else under that DEK)."""
    await conn.execute(
        """UPDATE wallet_keys SET key_id = $3, nonce = $4, ciphertext = $5, dek_id = $6, rotated_at = now()
           WHERE wallet_id = $1 AND chain = $2""",
        wallet_id,
        chain,
        sealed.key_id,
        sealed.nonce,
        sealed.ciphertext,
        dek_id,
    )


async def move_under_deks(conn: Conn, master: Keyring) -> int:
    """Re-seal tenant wallet keys still sealed directly under the master key under their tenant's DEK."""
    moved = 0
    async with conn.transaction():
        rows = await conn.fetch(
            """SELECT k.wallet_id, k.chain, k.key_id, k.nonce, k.ciphertext, w.tenant_id
               FROM wallet_keys k JOIN wallets w ON w.id = k.wallet_id
               WHERE k.dek_id IS NULL AND w.tenant_id IS NOT NULL FOR UPDATE OF k"""
        )
        for r in rows:
            dek = await open_dek(conn, master, r["tenant_id"], create=True)
            assert dek is not None
            aad = keys.aad(r["wallet_id"], r["chain"])
            secret = master.unseal(Sealed.from_row(r), aad=aad)
            new = dek.keyring.seal(secret, aad=aad)
            await reseal_wallet_key(conn, r["wallet_id"], r["chain"], new, dek.id)
            moved += 1
    return moved


async def shred(conn: Conn, tenant_id: uuid.UUID) -> int:
    """Destroy the tenant's DEK (inside the caller's transaction, after its wallet keys are gone or orphaned)."""
    result = await conn.execute("DELETE FROM tenant_data_keys WHERE tenant_id = $1", tenant_id)
    return int(result.split()[-1])
