"""Wallets in Postgres: create (keys sealed), read, policy changes, pause / resume; tenant-scoped, audited."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from chains.keys import KeyKinds
from wallets import datakeys, keys
from wallets.audit import AuditSink, WalletAudit, no_audit
from wallets.custody import Keyring, Sealed
from wallets.events import Conn, emit
from wallets.policy import Policy
from x402.errors import NotFound, ValidationFailed

_COLS = "id, tenant_id, name, addresses, status, paused_reason, policy, consecutive_failures, created_at"


@dataclass(frozen=True, slots=True)
class Wallet:
    """A wallet's public state (addresses and policy; keys stay in ``wallet_keys``)."""

    id: uuid.UUID
    tenant_id: uuid.UUID | None
    name: str
    #: public address by key kind label (``chains.keys.KeyKind.label``: ``evm``, ``solana``, a plugin chain's)
    addresses: Mapping[str, str]
    status: str
    paused_reason: str | None
    policy: Policy
    consecutive_failures: int
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Wallet:
        """Build from a ``wallets`` row."""
        return cls(
            id=row["id"],
            tenant_id=row["tenant_id"],
            name=row["name"],
            addresses=json.loads(row["addresses"]),
            status=row["status"],
            paused_reason=row["paused_reason"],
            policy=Policy.from_json(json.loads(row["policy"])),
            consecutive_failures=row["consecutive_failures"],
            created_at=row["created_at"],
        )

    def address_for(self, kinds: KeyKinds, network: str) -> str | None:
        """The wallet's address on ``network`` (None when it has no key of that network's kind)."""
        kind = kinds.for_network(network)
        return self.addresses.get(kind.label) if kind is not None else None

    def to_json(self) -> dict[str, Any]:
        """The API shape (never key material)."""
        out: dict[str, Any] = {
            "id": str(self.id),
            "name": self.name,
            "status": self.status,
            "addresses": dict(sorted(self.addresses.items())),
            "policy": self.policy.to_json(),
            "consecutiveFailures": self.consecutive_failures,
            "createdAt": self.created_at.isoformat(),
        }
        if self.tenant_id is not None:
            out["tenantId"] = str(self.tenant_id)
        if self.paused_reason:
            out["pausedReason"] = self.paused_reason
        return out


class WalletStore:
    """Create, read and change wallets; ``tenant`` scopes every read (None with ``any_tenant`` = operator)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        keyring: Keyring | None,
        audit: AuditSink = no_audit,
        kinds: KeyKinds | None = None,
    ) -> None:
        self.pool = pool
        self.keyring = keyring
        self.audit = audit
        self.kinds = kinds or keys.builtin_kinds()

    def require_keyring(self) -> Keyring:
        """The keyring, or a clear configuration error."""
        if self.keyring is None:
            raise ValidationFailed(
                "wallets need a master key: set X402_MASTER_KEY or X402_MASTER_KEY_FILE", code="master_key_missing"
            )
        return self.keyring

    async def create(
        self,
        *,
        tenant_id: uuid.UUID | None,
        name: str,
        chains: Sequence[str],
        policy: Policy,
        imports: Mapping[str, str] | None = None,
        actor: str = "anonymous",
        request_id: str | None = None,
    ) -> Wallet:
        """A new wallet with a fresh (or imported) key per chain, sealed before it touches the database."""
        keyring = self.require_keyring()
        kinds = {kind.name: kind for kind in map(self.kinds.named, [*chains, *(imports or {})])}
        if not kinds:
            names = ", ".join(self.kinds.names())
            raise ValidationFailed(f"a wallet needs at least one chain ({names})", code="invalid_chain")
        wallet_id = uuid.uuid4()
        new: dict[str, keys.NewKey] = {}
        for name, kind in sorted(kinds.items()):
            given = next((v for k, v in (imports or {}).items() if self.kinds.named(k) is kind), None)
            new[name] = keys.imported(kind, given) if given is not None else keys.generate(kind)
        addresses = {kinds[name].label: k.address for name, k in new.items()}
        async with self.pool.acquire() as conn, conn.transaction():
            # a tenant's keys are sealed under its data key, so deleting the tenant can crypto-shred them
            dek = await datakeys.open_dek(conn, keyring, tenant_id, create=True) if tenant_id is not None else None
            sealed = {fam: keys.seal(dek.keyring if dek else keyring, wallet_id, k) for fam, k in new.items()}
            new.clear()  # drop the plaintext keys as early as possible
            row = await conn.fetchrow(
                f"""INSERT INTO wallets (id, tenant_id, name, addresses, policy)
                    VALUES ($1, $2, $3, $4::jsonb, $5::jsonb) RETURNING {_COLS}""",
                wallet_id,
                tenant_id,
                name[:200],
                json.dumps(addresses),
                json.dumps(policy.to_json()),
            )
            for fam, s in sealed.items():
                await conn.execute(
                    """INSERT INTO wallet_keys (wallet_id, chain, key_id, nonce, ciphertext, dek_id)
                       VALUES ($1, $2, $3, $4, $5, $6)""",
                    wallet_id,
                    fam,
                    s.key_id,
                    s.nonce,
                    s.ciphertext,
                    dek.id if dek else None,
                )
            assert row is not None
            wallet = Wallet.from_row(row)
            await self.audit(
                conn, WalletAudit(actor, "wallet.create", str(wallet_id), None, wallet.to_json(), request_id)
            )
        return wallet

    async def get(self, wallet_id: uuid.UUID, tenant_id: uuid.UUID | None, *, any_tenant: bool = False) -> Wallet:
        """One wallet of this tenant, or NotFound."""
        row = await self.pool.fetchrow(f"SELECT {_COLS} FROM wallets WHERE id = $1", wallet_id)
        if row is None or (not any_tenant and row["tenant_id"] != tenant_id):
            raise NotFound("no such wallet", code="wallet_not_found")
        return Wallet.from_row(row)

    async def list_all(self, tenant_id: uuid.UUID | None, *, any_tenant: bool = False) -> list[Wallet]:
        """The tenant's wallets (all of them for the operator)."""
        if any_tenant:
            rows = await self.pool.fetch(f"SELECT {_COLS} FROM wallets ORDER BY created_at, id")
        else:
            rows = await self.pool.fetch(
                f"SELECT {_COLS} FROM wallets WHERE tenant_id IS NOT DISTINCT FROM $1 ORDER BY created_at, id",
                tenant_id,
            )
        return [Wallet.from_row(r) for r in rows]

    async def set_policy(self, wallet: Wallet, policy: Policy, actor: str, request_id: str | None = None) -> Wallet:
        """Replace the policy (audited with before and after)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"UPDATE wallets SET policy = $2::jsonb, updated_at = now() WHERE id = $1 RETURNING {_COLS}",
                wallet.id,
                json.dumps(policy.to_json()),
            )
            assert row is not None
            await self.audit(
                conn,
                WalletAudit(
                    actor,
                    "wallet.policy",
                    str(wallet.id),
                    {"policy": wallet.policy.to_json()},
                    {"policy": policy.to_json()},
                    request_id,
                ),
            )
        return Wallet.from_row(row)

    async def pause(self, wallet_id: uuid.UUID, reason: str, actor: str, request_id: str | None = None) -> Wallet:
        """Pause now (audited, ``wallet.paused`` event); pausing a paused wallet keeps its first reason."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await pause_locked(conn, self.audit, wallet_id, reason, actor, request_id)
        return Wallet.from_row(row)

    async def resume(self, wallet_id: uuid.UUID, actor: str, request_id: str | None = None) -> Wallet:
        """Resume a paused wallet and reset its failure streak (audited)."""
        async with self.pool.acquire() as conn, conn.transaction():
            before = await conn.fetchrow(f"SELECT {_COLS} FROM wallets WHERE id = $1 FOR UPDATE", wallet_id)
            if before is None:
                raise NotFound("no such wallet", code="wallet_not_found")
            row = await conn.fetchrow(
                f"""UPDATE wallets SET status = 'active', paused_reason = NULL, consecutive_failures = 0,
                                       updated_at = now() WHERE id = $1 RETURNING {_COLS}""",
                wallet_id,
            )
            assert row is not None
            await self.audit(
                conn,
                WalletAudit(
                    actor,
                    "wallet.resume",
                    str(wallet_id),
                    {"status": before["status"], "pausedReason": before["paused_reason"]},
                    {"status": "active"},
                    request_id,
                ),
            )
            if before["status"] == "paused":
                await emit(conn, tenant_id=row["tenant_id"], wallet_id=wallet_id, kind="wallet.resumed", data={})
        return Wallet.from_row(row)

    async def sealed_key(self, wallet_id: uuid.UUID, chain: str) -> tuple[Keyring, Sealed] | None:
        """The stored ciphertext of one key and the keyring that opens it (used only by ``keys.signer``)."""
        async with self.pool.acquire() as conn:
            return await datakeys.wallet_key(conn, self.require_keyring(), wallet_id, chain)

    async def bind_agent_key(self, key_id: uuid.UUID, wallet_id: uuid.UUID) -> None:
        """Restrict an API key to paying from (and reading) this wallet."""
        await self.pool.execute(
            "INSERT INTO wallet_agent_keys (key_id, wallet_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            key_id,
            wallet_id,
        )

    async def agent_wallets(self, key_id: uuid.UUID) -> frozenset[uuid.UUID] | None:
        """The wallets an agent key is bound to; None when the key is not an agent key."""
        rows = await self.pool.fetch("SELECT wallet_id FROM wallet_agent_keys WHERE key_id = $1", key_id)
        return frozenset(r["wallet_id"] for r in rows) if rows else None


async def pause_locked(
    conn: Conn, audit: AuditSink, wallet_id: uuid.UUID, reason: str, actor: str, request_id: str | None = None
) -> asyncpg.Record:
    """Pause inside the caller's transaction: audit + ``wallet.paused`` event only on the active -> paused edge."""
    before = await conn.fetchrow(f"SELECT {_COLS} FROM wallets WHERE id = $1 FOR UPDATE", wallet_id)
    if before is None:
        raise NotFound("no such wallet", code="wallet_not_found")
    if before["status"] == "paused":
        return before
    row = await conn.fetchrow(
        f"""UPDATE wallets SET status = 'paused', paused_reason = $2, updated_at = now() WHERE id = $1
            RETURNING {_COLS}""",
        wallet_id,
        reason,
    )
    assert row is not None
    await audit(
        conn,
        WalletAudit(
            actor,
            "wallet.pause",
            str(wallet_id),
            {"status": "active"},
            {"status": "paused", "pausedReason": reason},
            request_id,
        ),
    )
    await emit(conn, tenant_id=row["tenant_id"], wallet_id=wallet_id, kind="wallet.paused", data={"reason": reason})
    return row
