"""Everything the wallet feature needs, built once per app from settings: store, ledger, payer, tasks."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import asyncpg

from chains.config import NetworkConfig
from chains.registry import ChainRegistry
from chains.solana.rpc import SolanaRpcPool
from wallets import datakeys, keys
from wallets.approvals import Approvals
from wallets.audit import AuditSink, no_audit
from wallets.custody import CustodyError, Keyring, load_keyring
from wallets.ledger import Ledger, sweep
from wallets.outbound import Fetcher
from wallets.payer import PayeeScreen, WalletPayer
from wallets.reconcile import Pass, chain_lookup, reconcile_once
from wallets.store import WalletStore
from x402.logs import get_logger
from x402.wire.networks import is_solana

log = get_logger("wallets")


class WalletSettings(Protocol):
    """The service settings the wallet feature reads (the service's ``Settings`` has them all)."""

    @property
    def master_key(self) -> str | None:
        """The master key sealing wallet keys, inline."""
        ...

    @property
    def master_key_file(self) -> Path | None:
        """The master key sealing wallet keys, from a file."""
        ...

    @property
    def allow_private_outbound(self) -> bool:
        """Whether outbound fetches may reach private addresses."""
        ...

    @property
    def max_body_bytes(self) -> int:
        """The largest body read from a paid resource."""
        ...

    @property
    def rpc_timeout(self) -> float:
        """Seconds per RPC call."""
        ...

    @property
    def networks(self) -> tuple[NetworkConfig, ...]:
        """The configured networks."""
        ...


@dataclass(frozen=True, slots=True)
class WalletOptions:
    """Tunables of the wallet feature (defaults suit production; tests shorten the intervals)."""

    fetch_timeout: float = 30.0
    sweep_interval: float = 30.0
    #: how often pending payments (sent, no receipt) are checked on-chain
    reconcile_interval: float = 15.0


class WalletService:
    """The wallet feature of one process."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: WalletSettings,
        options: WalletOptions | None = None,
        audit: AuditSink = no_audit,
        screen: PayeeScreen | None = None,
        chains: ChainRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.options = options or WalletOptions()
        self.keyring: Keyring | None = load_keyring(
            settings.master_key, str(settings.master_key_file) if settings.master_key_file else None
        )
        self.pool = pool
        #: Solana RPC pools for agent wallets' signers (the mint, a blockhash), with failover and breakers
        self.svm_rpc = {
            n.network: SolanaRpcPool(n.network, n.rpc_urls, settings.rpc_timeout)
            for n in settings.networks
            if is_solana(n.network) and n.rpc_urls
        }
        #: built-in key kinds plus those the configured chain adapters bring (chains/keys.py)
        self.kinds = keys.builtin_kinds(self.svm_rpc).with_sources(chains or ())
        self.store = WalletStore(pool, self.keyring, audit, self.kinds)
        self.ledger = Ledger(pool, audit)
        self.approvals = Approvals(pool, audit)
        self.fetcher = Fetcher(
            allow_private=settings.allow_private_outbound,
            timeout=self.options.fetch_timeout,
            max_bytes=settings.max_body_bytes,
        )
        self.lookup = chain_lookup(chains)
        self.payer: WalletPayer | None = (
            WalletPayer(
                self.store,
                self.ledger,
                self.approvals,
                self.fetcher,
                self.keyring,
                kinds=self.kinds,
                screen=screen,
                status=self.lookup,
            )
            if self.keyring is not None
            else None
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def prepare(self) -> None:
        """Move tenant wallet keys still sealed under the master key under their tenant's data key (once)."""
        if self.keyring is None:
            return
        try:
            async with self.pool.acquire() as conn:
                moved = await datakeys.move_under_deks(conn, self.keyring)
        except CustodyError as exc:
            # a process with the wrong master key cannot pay either; it says so when it tries
            log.warning("data_key_migration_failed", error=exc.code)
            return
        if moved:
            log.info("wallet_keys_moved_under_tenant_data_keys", count=moved)

    def start(self) -> None:
        """Start the sweeper and the reconciler."""
        if self.keyring is None:
            log.warning("wallets_disabled", detail="no master key (X402_MASTER_KEY): wallets cannot be created or pay")
        self._tasks.append(asyncio.create_task(self._sweeper(), name="wallet-sweeper"))
        self._tasks.append(asyncio.create_task(self._reconciler(), name="wallet-reconciler"))

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.options.sweep_interval)
            try:
                async with self.pool.acquire() as conn:
                    n = await sweep(conn)
                if n:
                    log.info("reservations_expired", count=n)
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                log.warning("sweep_failed", error=type(exc).__name__)

    async def reconcile(self) -> Pass:
        """One pass over the pending payments (the background task runs this every ``reconcile_interval``)."""
        return await reconcile_once(self.ledger, self.lookup)

    async def _reconciler(self) -> None:
        while True:
            await asyncio.sleep(self.options.reconcile_interval)
            try:
                await self.reconcile()
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                log.warning("reconcile_failed", error=type(exc).__name__)

    async def close(self) -> None:
        """Stop the tasks, close the outbound session."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.fetcher.close()
        for rpc in self.svm_rpc.values():
            await rpc.close()
