"""Offline sanctions screening: a dated snapshot of SDN digital-currency addresses, looked up as set membership."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from risk.addresses import normalize_address
from risk.model import Flag, RiskContext

SNAPSHOT_NAME = "sdn_crypto.json"


@dataclass(frozen=True, slots=True)
class SanctionsList:
    """Sanctioned addresses (normalised) with the list's publication date and origin."""

    version: str
    source: str
    addresses: frozenset[str]
    names: dict[str, str]
    sample: bool = False

    def __contains__(self, address: object) -> bool:
        return isinstance(address, str) and normalize_address(address) in self.addresses

    def name_of(self, address: str) -> str:
        """The sanctioned entity's name, when the list has it."""
        return self.names.get(normalize_address(address), "")

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> SanctionsList:
        """Build from the ``sdn_crypto.json`` document."""
        raw = doc.get("addresses") or {}
        addrs: set[str] = set()
        names: dict[str, str] = {}
        for key, info in raw.items():
            addr = normalize_address(str(key))
            addrs.add(addr)
            if isinstance(info, dict) and info.get("names"):
                names[addr] = str(info["names"][0])
        return cls(
            version=str(doc.get("version", "unknown")),
            source=str(doc.get("source", "")),
            addresses=frozenset(addrs),
            names=names,
            sample=bool(doc.get("sample", False)),
        )


def snapshot_path(data_dir: Path) -> Path:
    """Where ``x402 risk update-lists`` writes the operator's newer list."""
    return data_dir / "risk" / SNAPSHOT_NAME


def load_sanctions(data_dir: Path | None) -> SanctionsList:
    """The operator's list under ``data_dir/risk`` when present, else the packaged snapshot (blocking: start-up)."""
    if data_dir is not None:
        path = snapshot_path(data_dir)
        if path.is_file():
            return SanctionsList.from_document(json.loads(path.read_text()))
    text = resources.files("risk").joinpath("data", SNAPSHOT_NAME).read_text()
    return SanctionsList.from_document(json.loads(text))


class SanctionsRule:
    """Blocks a payment whose payer or payTo is on the sanctions list; tenants cannot disable it."""

    name = "sanctions"
    inline = True  # a set lookup: no I/O

    def __init__(self, sanctions: SanctionsList) -> None:
        self.sanctions = sanctions

    async def evaluate(self, ctx: RiskContext) -> list[Flag]:
        """Critical, blocking flags for sanctioned parties."""
        flags: list[Flag] = []
        for role, code, addr in (("payer", "sanctioned_payer", ctx.payer), ("payTo", "sanctioned_pay_to", ctx.pay_to)):
            if addr and addr in self.sanctions:
                who = self.sanctions.name_of(addr)
                detail = f" ({who})" if who else ""
                msg = f"{role} {addr} is on the OFAC SDN list{detail}, version {self.sanctions.version}"
                flags.append(Flag(code, "critical", msg, self.name, "block"))
        ctx.facts["sanctioned"] = bool(flags)
        return flags
