"""The ``x402`` command line: serve, migrate, tenants, keys, audit, wallets, risk."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence

from x402 import __version__
from x402.errors import X402Error
from x402.settings import Settings, load_settings


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="x402", description="x402 payment verification and agent wallet service")
    p.add_argument("--version", action="version", version=f"x402-service {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the service (embedded Postgres when DATABASE_URL is unset)")
    s.add_argument("--host", help="bind address (X402_HOST, default 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (X402_PORT, default 4020)")
    s.add_argument("--workers", type=int, help="worker processes sharing the port via SO_REUSEPORT")
    s.add_argument("--dev", action="store_true", help="local playground: anvil + test token + demo routes")
    sub.add_parser("migrate", help="apply database migrations (DATABASE_URL required)")
    from x402.platform.cli import add_parsers

    add_parsers(sub)
    from x402.wallets_api import cli as wallets_cli

    wallets_cli.add_parser(sub)
    r = sub.add_parser("risk", help="risk lists and rules: update-lists, show-lists, check-rule", add_help=False)
    r.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``x402`` console script."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "serve":
            from x402.server import serve_main

            changes: dict[str, object] = {}
            if args.host:
                changes["host"] = args.host
            if args.port is not None:
                changes["port"] = args.port
            if args.workers is not None:
                if args.workers < 1:
                    raise SystemExit("--workers must be at least 1")
                changes["workers"] = args.workers
            return serve_main(settings.with_(**changes), dev=args.dev or settings.dev)
        if args.command == "risk":
            from risk.cli import main as risk_main

            return risk_main(args.rest, data_dir=settings.data_dir)
        if args.command in ("migrate", "tenants", "keys", "audit", "wallets"):
            with _database(settings) as db_settings:
                if args.command == "migrate":
                    return _migrate(db_settings.database_url)
                if args.command == "wallets":
                    from x402.wallets_api import cli as wallets_cli

                    return wallets_cli.run(args, db_settings)
                from x402.platform.cli import run

                return run(args, db_settings)
    except X402Error as exc:
        print(f"x402: {exc.code}: {exc.detail}", file=sys.stderr)
        return 2
    return 1


@contextlib.contextmanager
def _database(settings: Settings) -> Iterator[Settings]:
    """Settings with a database: DATABASE_URL, else the embedded Postgres of ``x402 serve`` (the one already running
    for this data dir, or started for this command and stopped after it)."""
    if settings.database_url:
        yield settings
        return
    import asyncio

    from x402.storage.db import migrate_url
    from x402.storage.embedded import start_embedded

    print(f"DATABASE_URL is not set: using the embedded Postgres in {settings.data_dir / 'pgdata'}", file=sys.stderr)
    emb = start_embedded(settings.data_dir)
    try:
        asyncio.run(migrate_url(emb.url))
        yield settings.with_(database_url=emb.url)
    finally:
        emb.stop()


def _migrate(url: str | None) -> int:
    import asyncio

    from x402.storage.db import migrate_url

    if not url:
        print("x402 migrate: DATABASE_URL is not set", file=sys.stderr)
        return 2
    applied = asyncio.run(migrate_url(url))
    print(f"applied {applied}" if applied else "schema is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
