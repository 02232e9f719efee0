"""Volume per asset in atomic units, and the USD figure of the stablecoins among them."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from x402.wire.assets import find_asset

#: Symbols pegged 1:1 to the US dollar. EURC (and any token not in x402/wire/assets.py) has no USD figure: its
#: volume is reported in atomic units only, never converted at a guessed exchange rate.
USD_SYMBOLS = frozenset({"USDC", "USDT0", "MegaUSD"})


def usd_decimals(network: str, asset: str) -> int | None:
    """Decimals of a USD stablecoin at ``asset`` on ``network``, or None when it is not one."""
    info = find_asset(network, asset)
    return info.decimals if info is not None and info.symbol in USD_SYMBOLS else None


def usd(volume: Iterable[tuple[str, str, int]]) -> str:
    """USD total of (network, asset, atomic amount) triples as a plain decimal string (exact, no rounding)."""
    total = Decimal(0)
    for network, asset, amount in volume:
        decimals = usd_decimals(network, asset)
        if decimals is not None:
            total += Decimal(amount).scaleb(-decimals)
    return format(total.normalize(), "f") if total else "0"


def volume_json(volume: Iterable[tuple[str, str, int]]) -> list[dict[str, str]]:
    """The ``volume`` array of an answer, sorted by network and asset."""
    return [{"network": n, "asset": a, "amount": str(v)} for n, a, v in sorted(volume)]
