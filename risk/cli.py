"""``x402 risk ...``: load a newer OFAC SDN file into the data dir, show list versions, check a rule expression."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from risk.expr import RuleSyntaxError, compile_expression
from risk.sanctions import load_sanctions, snapshot_path
from risk.sdn import parse_sdn_file


def build_snapshot(data: bytes, *, version: str, source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``sdn_crypto.json`` document for an SDN file, and the parse summary."""
    parsed = parse_sdn_file(data)
    doc = {
        "version": version,
        "source": source,
        "generated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "counts": parsed.summary(),
        "addresses": {a: parsed.addresses[a] for a in sorted(parsed.addresses)},
    }
    return doc, parsed.summary()


def _write_atomic(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)  # readers see the old list or the new one, never half of one


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="x402 risk", description="risk lists and rules")
    sub = p.add_subparsers(dest="command", required=True)
    u = sub.add_parser("update-lists", help="load an OFAC sdn.csv / sdn_advanced.xml into the data dir")
    u.add_argument("--file", required=True, type=Path, help="path to sdn.csv or sdn_advanced.xml")
    u.add_argument("--version", help="publication date of the list (default: the file's modification date)")
    u.add_argument("--source", help="where the file came from (recorded with the list)")
    u.add_argument("--data-dir", type=Path, help="data directory (default: X402_DATA_DIR / the user data dir)")
    u.add_argument("--out", type=Path, help="write the snapshot here instead of <data-dir>/risk/sdn_crypto.json")
    u.add_argument("--allow-empty", action="store_true", help="accept a file with no EVM/Solana addresses")
    u.add_argument("--sample", action="store_true", help="mark the snapshot as a partial sample, not the full list")
    s = sub.add_parser("show-lists", help="print the sanctions list in use and its version")
    s.add_argument("--data-dir", type=Path)
    c = sub.add_parser("check-rule", help="parse and type-check a custom rule expression")
    c.add_argument("expression")
    return p


def _data_dir(arg: Path | None, default: Path | None) -> Path:
    # the default comes from the service settings (``x402 risk`` passes it): risk does not read them itself
    found = arg if arg is not None else default
    if found is None:
        raise SystemExit("--data-dir is required (or run it as `x402 risk`, which uses X402_DATA_DIR)")
    return found


def main(argv: Sequence[str] | None = None, *, data_dir: Path | None = None) -> int:
    """Entry point (``x402 risk ...``)."""
    args = _parser().parse_args(argv)

    if args.command == "update-lists":
        try:
            data = args.file.read_bytes()
        except OSError as exc:
            print(f"x402 risk: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 2
        mtime = datetime.fromtimestamp(args.file.stat().st_mtime, UTC).strftime("%Y-%m-%d")
        source = args.source or f"OFAC SDN ({args.file.name})"
        doc, summary = build_snapshot(data, version=args.version or mtime, source=source)
        if args.sample:
            doc = {"sample": True, **doc}
        if not doc["addresses"] and not args.allow_empty:
            print("x402 risk: no EVM or Solana addresses found; refusing to replace the list", file=sys.stderr)
            return 2
        out = args.out or snapshot_path(_data_dir(args.data_dir, data_dir))
        _write_atomic(out, doc)
        print(json.dumps({"written": str(out), "version": doc["version"], **summary}))
        return 0
    if args.command == "show-lists":
        sl = load_sanctions(_data_dir(args.data_dir, data_dir))
        print(json.dumps({"version": sl.version, "source": sl.source, "addresses": len(sl.addresses)}))
        return 0
    if args.command == "check-rule":
        try:
            expr = compile_expression(args.expression)
        except RuleSyntaxError as exc:
            print(f"{exc.code}: {exc.detail}", file=sys.stderr)
            return 1
        print(json.dumps({"ok": True, "variables": sorted(expr.names)}))
        return 0
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
