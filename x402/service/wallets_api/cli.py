"""``x402 wallets rotate-master-key --new-key-file F``: re-wrap every wallet key under a new master key."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from wallets.custody import Keyring, key_id_of, load_keyring
from wallets.rotate import rewrap_all
from x402.errors import ConfigError
from x402.service.settings import Settings
from x402.service.storage.db import connect


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``wallets`` command group."""
    w = sub.add_parser("wallets", help="agent wallet maintenance")
    wsub = w.add_subparsers(dest="wallets_command", required=True)
    r = wsub.add_parser("rotate-master-key", help="re-wrap every wallet key and webhook secret under a new master key")
    r.add_argument("--new-key-file", required=True, type=Path, help="file whose first line is the new key (hex/b64)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run a ``wallets`` subcommand."""
    if args.wallets_command == "rotate-master-key":
        return rotate(settings, args.new_key_file)
    return 2


def rotate(settings: Settings, new_key_file: Path) -> int:
    """Re-wrap under the new key; the file then holds the new key first and every old key after it."""
    if not settings.database_url:
        print("x402 wallets: DATABASE_URL is not set", file=sys.stderr)
        return 2
    old = load_keyring(settings.master_key, str(settings.master_key_file) if settings.master_key_file else None)
    try:
        given = Keyring.parse(new_key_file.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {new_key_file}: {exc.strerror}") from exc
    previous = list(given.previous)
    if old is not None:
        previous += [k for k in (old.current, *old.previous) if k != given.current and k not in previous]
    keyring = Keyring(given.current, tuple(previous))
    n_keys, n_hooks = asyncio.run(_rewrap(settings.database_url, keyring))
    # the file becomes the whole keyring, newest first, so processes still holding the old key keep working
    lines = [k.hex() for k in (keyring.current, *keyring.previous)]
    fd = os.open(new_key_file, os.O_WRONLY | os.O_TRUNC | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print(
        f"re-wrapped {n_keys} keys (wallet keys without a tenant, tenant data keys) and {n_hooks} webhook secrets "
        f"under master key {key_id_of(keyring.current)}; "
        f"point X402_MASTER_KEY_FILE at {new_key_file} (new key first, old keys after it) and restart"
    )
    return 0


async def _rewrap(url: str, keyring: Keyring) -> tuple[int, int]:
    conn = await connect(url)
    try:
        return await rewrap_all(conn, keyring)
    finally:
        await conn.close()
