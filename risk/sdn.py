"""Parsers for the digital-currency addresses in OFAC's SDN list (``sdn.csv`` remarks and ``sdn_advanced.xml``).

OFAC writes each address as ``Digital Currency Address - <ASSET> <address>;`` (with ``alt.`` prefixes for
further ones). Only the families an x402 payment can use are kept: EVM (``0x`` + 40 hex, lower-cased) under an
EVM-family asset code, and Solana (base58, 32 bytes) under ``SOL`` or a stablecoin code. Other assets (XBT,
TRX, XMR...) are counted, not stored. Entries that claim an EVM/Solana asset but do not parse are skipped and
counted, so an operator can see a malformed list instead of silently trusting it.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from defusedxml import ElementTree as SafeET

from risk.addresses import is_evm_address, is_solana_address

#: Asset codes OFAC uses for EVM chains (USDC/USDT only count as EVM when the address is 0x...).
EVM_ASSETS = frozenset({"ETH", "ETC", "USDC", "USDT", "BSC", "BNB", "ARB", "MATIC", "POL", "AVAX", "OP", "BASE"})
#: Asset codes whose addresses may be Solana accounts.
SOLANA_ASSETS = frozenset({"SOL", "USDC", "USDT"})

_PREFIX = "Digital Currency Address - "
_ENTRY = re.compile(r"Digital Currency Address - ([A-Za-z0-9]+)\s+([^\s;,]+)")
_SDN_COLUMNS = 12  # ent_num, SDN_Name, SDN_Type, Program, Title, Call_Sign, Vess_type, Tonnage, GRT, ...


@dataclass
class SdnAddresses:
    """What a parse found: normalised address -> assets and entity names, plus counts for the audit log."""

    addresses: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)
    other_assets: Counter[str] = field(default_factory=Counter)

    def add(self, asset: str, raw: str, name: str = "") -> bool:
        """Record one ``<ASSET> <address>`` pair; False (and counted) when it is malformed or not EVM/Solana."""
        asset = asset.upper()
        value = raw.strip().rstrip(".")
        if asset in EVM_ASSETS and value.startswith(("0x", "0X")):
            if not is_evm_address(value):
                return self._skip(asset, value)
            key = value.lower()
        elif asset in SOLANA_ASSETS and is_solana_address(value):
            key = value
        elif asset == "SOL" or (asset in EVM_ASSETS and asset not in SOLANA_ASSETS):
            return self._skip(asset, value)  # the asset's only address format did not parse
        else:
            # XBT, TRX, XMR... and stablecoins on other chains (USDT on Tron): valid, just not payable via x402 here
            self.other_assets[asset if asset not in SOLANA_ASSETS else f"{asset} (other chain)"] += 1
            return False
        entry = self.addresses.setdefault(key, {"assets": [], "names": []})
        if asset not in entry["assets"]:
            entry["assets"].append(asset)
        if name and name not in entry["names"]:
            entry["names"].append(name)
        return True

    def _skip(self, asset: str, value: str) -> bool:
        self.skipped += 1
        if len(self.skipped_examples) < 20:
            self.skipped_examples.append(f"{asset} {value[:80]}")
        return False

    def summary(self) -> dict[str, Any]:
        """Counts for logs and the CLI."""
        evm = sum(1 for a in self.addresses if a.startswith("0x"))
        return {
            "evm": evm,
            "solana": len(self.addresses) - evm,
            "skipped": self.skipped,
            "other_assets": dict(self.other_assets),
        }


def parse_remarks(text: str, into: SdnAddresses, name: str = "") -> None:
    """Scan free text (an SDN Remarks field) for ``Digital Currency Address - ASSET value`` entries."""
    for m in _ENTRY.finditer(text):
        into.add(m.group(1), m.group(2), name)


def parse_sdn_csv(text: str) -> SdnAddresses:
    """Parse OFAC ``sdn.csv`` (no header, ``-0-`` for empty, Remarks in the 12th column)."""
    out = SdnAddresses()
    text = text.replace("\x1a", "")  # OFAC files may end with a DOS end-of-file byte
    for row in csv.reader(io.StringIO(text)):
        if len(row) < _SDN_COLUMNS:
            if any(_PREFIX in cell for cell in row):
                parse_remarks(" ".join(row), out)
            continue
        name = row[1].strip()
        remarks = row[11]
        if _PREFIX in remarks:
            parse_remarks(remarks, out, "" if name == "-0-" else name)
    return out


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_sdn_advanced_xml(data: bytes) -> SdnAddresses:
    """Parse ``sdn_advanced.xml``: FeatureType ids named ``Digital Currency Address - X``, values in VersionDetail."""
    out = SdnAddresses()
    feature_assets: dict[str, str] = {}
    for _event, elem in SafeET.iterparse(io.BytesIO(data), events=("end",)):
        tag = _local(elem.tag)
        if tag == "FeatureType":
            label = (elem.text or "").strip()
            if label.startswith(_PREFIX):
                feature_assets[elem.get("ID", "")] = label[len(_PREFIX) :].strip()
        elif tag == "Feature":
            asset = feature_assets.get(elem.get("FeatureTypeID", ""))
            if asset is not None:
                for detail in elem.iter():
                    if _local(detail.tag) == "VersionDetail" and detail.text and detail.text.strip():
                        out.add(asset, detail.text.strip())
            elem.clear()
        elif tag == "DistinctParty":
            elem.clear()  # keep memory flat on the ~100 MB real file
    return out


def parse_sdn_file(data: bytes) -> SdnAddresses:
    """Parse either SDN format, sniffed from the content."""
    head = data[:512].lstrip()
    if head.startswith(b"<"):
        return parse_sdn_advanced_xml(data)
    return parse_sdn_csv(data.decode("utf-8", errors="replace"))
