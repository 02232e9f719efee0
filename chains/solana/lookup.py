"""Address-lookup-table resolution for v0 messages: the accounts a transaction loads, read through RPC.

Fails closed: a table that does not exist, is not owned by the lookup-table program, cannot be decoded or lacks an
index the message asks for makes the payment invalid (``…_alt_resolution_failed``); an RPC that does not answer is
the usual ChainUnavailable (503). Nothing is checked against unresolved accounts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.core import RPCException
from solders.address_lookup_table_account import ID as LOOKUP_TABLE_PROGRAM
from solders.address_lookup_table_account import AddressLookupTable
from solders.message import MessageAddressTableLookup
from solders.pubkey import Pubkey

from chains.solana.rpc import SolanaRpcPool


class LookupFailed(Exception):
    """A lookup table could not be resolved (the message says which and why)."""


async def resolve_lookups(pool: SolanaRpcPool, lookups: Sequence[MessageAddressTableLookup]) -> list[Pubkey]:
    """The loaded addresses in runtime order: every table's writable indexes, then every table's read-only ones."""
    if not lookups:
        return []
    tables = [lk.account_key for lk in lookups]

    async def run(c: AsyncClient) -> Any:
        return await c.get_multiple_accounts(tables, commitment=Confirmed)

    try:
        accounts = (await pool.call(run)).value
    except RPCException as exc:
        raise LookupFailed(f"getMultipleAccounts was refused: {exc}") from exc
    contents: list[list[Pubkey]] = []
    for table, acc in zip(tables, accounts, strict=True):
        if acc is None:
            raise LookupFailed(f"lookup table {table} does not exist")
        if acc.owner != LOOKUP_TABLE_PROGRAM:
            raise LookupFailed(f"account {table} is not an address lookup table")
        try:
            contents.append(list(AddressLookupTable.deserialize(bytes(acc.data)).addresses))
        except Exception as exc:  # solders raises its own error types for bad bytes
            raise LookupFailed(f"lookup table {table} cannot be decoded: {exc}") from None
    writable: list[Pubkey] = []
    readonly: list[Pubkey] = []
    for lk, addrs, table in zip(lookups, contents, tables, strict=True):
        for wanted, out in ((bytes(lk.writable_indexes), writable), (bytes(lk.readonly_indexes), readonly)):
            for i in wanted:
                if i >= len(addrs):
                    raise LookupFailed(f"lookup table {table} has no index {i}")
                out.append(addrs[i])
    return writable + readonly


__all__ = ["LOOKUP_TABLE_PROGRAM", "LookupFailed", "resolve_lookups"]
