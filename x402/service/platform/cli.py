"""``x402 tenants|keys|audit ...``: platform administration straight against DATABASE_URL."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from pathlib import Path
from typing import Any

import asyncpg

from x402.errors import X402Error
from x402.service.platform import audit, lifecycle
from x402.service.platform.tenants import Actor, TenantStore, parse_uuid
from x402.service.platform.tiers import load_tiers
from x402.service.settings import Settings
from x402.service.storage.db import plain_numeric
from x402.service.storage.scope import apply_scope, system_scope


def add_parsers(sub: Any) -> None:
    """Add the tenants, keys and audit commands to the ``x402`` parser."""
    t = sub.add_parser("tenants", help="create, list, suspend, export, delete tenants; change a tier").add_subparsers(
        dest="action", required=True
    )
    c = t.add_parser("create", help="create a tenant")
    c.add_argument("--name", required=True)
    c.add_argument("--tier", default="free")
    t.add_parser("list", help="list tenants")
    st = t.add_parser("set-tier", help="move a tenant to another tier")
    st.add_argument("tenant_id")
    st.add_argument("tier")
    for name, text in (
        ("suspend", "suspend a tenant (its keys get 403 tenant_suspended)"),
        ("reactivate", "reactivate a suspended tenant"),
    ):
        t.add_parser(name, help=text).add_argument("tenant_id")
    t.add_parser("export", help="write every row of a tenant as JSON lines to stdout").add_argument("tenant_id")
    td = t.add_parser("delete", help="delete a tenant's data and crypto-shred its wallet keys")
    td.add_argument("tenant_id")
    td.add_argument("--confirm", required=True, help="the tenant id again")

    k = sub.add_parser("keys", help="create, list, rotate, revoke API keys").add_subparsers(
        dest="action", required=True
    )
    kc = k.add_parser("create", help="create a key (printed once)")
    kc.add_argument("--tenant", required=True, help="tenant id")
    kc.add_argument("--scopes", default="verify,settle", help="comma-separated: verify,settle,wallets,registry,admin")
    kc.add_argument("--mode", choices=("live", "test"), default="live")
    kc.add_argument("--name", default="")
    kl = k.add_parser("list", help="list a tenant's keys")
    kl.add_argument("--tenant", required=True)
    kr = k.add_parser("rotate", help="replace a key (the new one is printed once)")
    kr.add_argument("key_id")
    kr.add_argument("--grace", type=int, default=0, help="seconds the old key keeps working")
    kv = k.add_parser("revoke", help="revoke a key now")
    kv.add_argument("key_id")

    a = sub.add_parser("audit", help="verify or export the audit log").add_subparsers(dest="action", required=True)
    a.add_parser("verify", help="check the hash chain (exit 1 naming the first bad row)")
    ae = a.add_parser("export", help="write the log as JSON lines")
    ae.add_argument("--out", type=Path, help="file (default: stdout)")


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one platform command; returns the exit code."""
    if not settings.database_url:
        print(f"x402 {args.command}: DATABASE_URL is not set", file=sys.stderr)
        return 2
    return asyncio.run(_run(args, settings, settings.database_url))


async def _run(args: argparse.Namespace, settings: Settings, url: str) -> int:
    # the CLI is the operator: it spans tenants, and holds even when DATABASE_URL names a role bound by RLS
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2, setup=apply_scope, init=plain_numeric)
    assert pool is not None
    try:
        with system_scope("operator CLI: tenants, keys and the audit log of every tenant"):
            return await _dispatch(args, settings, pool)
    finally:
        await pool.close()


async def _dispatch(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    if args.command == "audit":
        return await _audit(args, pool)
    store = TenantStore(pool, frozenset(load_tiers(settings.tiers_override)))
    actor = Actor(f"cli:{getpass.getuser()}")
    try:
        return await _admin(args, store, actor)
    except X402Error as exc:
        print(f"x402 {args.command} {args.action}: {exc.code}: {exc.detail}", file=sys.stderr)
        return 1


async def _admin(args: argparse.Namespace, store: TenantStore, actor: Actor) -> int:
    if args.command == "tenants":
        if args.action == "create":
            _print(await store.create_tenant(args.name, args.tier, actor))
        elif args.action == "list":
            _print(await store.list_tenants())
        elif args.action in ("suspend", "reactivate"):
            status = "suspended" if args.action == "suspend" else "active"
            _print(await lifecycle.set_status(store.pool, parse_uuid(args.tenant_id), status, actor))
        elif args.action == "export":
            tenant_id = parse_uuid(args.tenant_id)
            await lifecycle.audit_export(store.pool, tenant_id, actor)
            n = 0
            async for line in lifecycle.export_lines(store.pool, tenant_id):
                sys.stdout.write(line + "\n")
                n += 1
            print(f"exported {n} rows", file=sys.stderr)
        elif args.action == "delete":
            _print(await lifecycle.delete_tenant(store.pool, parse_uuid(args.tenant_id), actor, confirm=args.confirm))
        else:
            _print(await store.set_tier(parse_uuid(args.tenant_id), args.tier, actor))
        return 0
    if args.action == "create":
        scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
        meta, plaintext = await store.create_key(
            parse_uuid(args.tenant), actor, scopes=scopes, mode=args.mode, name=args.name
        )
        _print({**meta, "key": plaintext})
        print("store this key now: it is not shown again", file=sys.stderr)
    elif args.action == "list":
        _print(await store.list_keys(parse_uuid(args.tenant)))
    elif args.action == "rotate":
        meta, plaintext, old = await store.rotate_key(parse_uuid(args.key_id), actor, tenant=None, grace=args.grace)
        _print({**meta, "key": plaintext, "replaced": old})
        print("store this key now: it is not shown again", file=sys.stderr)
    else:
        _print(await store.revoke_key(parse_uuid(args.key_id), actor, tenant=None))
    return 0


async def _audit(args: argparse.Namespace, pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        if args.action == "verify":
            report = await audit.verify(conn)
            if report.ok:
                print(f"audit log intact: {report.rows} rows")
                return 0
            print(f"audit log broken at row {report.bad_id}: {report.problem}", file=sys.stderr)
            return 1
        lines = [audit.export_line(row) async for row in audit.rows(conn)]
    text = "".join(line + "\n" for line in lines)
    if args.out:
        await asyncio.to_thread(args.out.write_text, text)
        print(f"exported {len(lines)} rows to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
