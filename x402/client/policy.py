"""Which offer of a 402 challenge the payer accepts: networks, assets, a per-payment cap, cheapest first."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from fractions import Fraction

from x402.client.signer import PaymentSigner, signer_for
from x402.errors import BadRequest
from x402.wire.assets import default_asset, find_asset
from x402.wire.models import PaymentRequirements, parse_amount
from x402.wire.networks import is_evm, matches

#: The default cap per payment: 1.00 of a 6-decimal stablecoin (the official clients' default is $1 too).
DEFAULT_MAX_AMOUNT = 1_000_000


@dataclass(frozen=True, slots=True)
class PaymentPolicy:
    """Spending rules of one payer.

    ``allowed_assets`` None means the default stablecoins of each network only (architecture.md §3.3), like the official
    clients' spend controls; list token addresses (or ``"*"``) to allow others. ``max_amount`` caps one payment in
    atomic units (None: no cap). With ``prefer_cheapest`` the cheapest acceptable offer wins (amounts compared
    in whole tokens where the decimals are known, else as atomic units); otherwise the first one does.
    """

    allowed_networks: Sequence[str] | None = None
    allowed_assets: Collection[str] | None = None
    max_amount: int | None = DEFAULT_MAX_AMOUNT
    prefer_cheapest: bool = True

    def refusal(self, req: PaymentRequirements) -> str | None:
        """Why this policy refuses an offer, or None when it accepts it."""
        if self.allowed_networks is not None and not any(matches(p, req.network) for p in self.allowed_networks):
            return f"network {req.network} is not allowed"
        if self.allowed_assets is None:
            known = default_asset(req.network)
            if known is None or find_asset(req.network, req.asset) is None:
                return f"asset {req.asset} is not a default stablecoin of {req.network}"
        elif "*" not in self.allowed_assets and not _listed(req, self.allowed_assets):
            return f"asset {req.asset} is not allowed"
        try:
            amount = parse_amount(req.amount)
        except BadRequest:
            return f"amount {req.amount!r} is not an atomic amount"
        if self.max_amount is not None and amount > self.max_amount:
            return f"amount {amount} is above the cap of {self.max_amount}"
        return None

    def choose(
        self, offers: Sequence[PaymentRequirements], signers: Sequence[PaymentSigner]
    ) -> tuple[int, PaymentSigner] | list[str]:
        """``(index of the chosen offer, its signer)``, or the reasons every offer was refused."""
        acceptable: list[tuple[int, PaymentSigner]] = []
        refusals: list[str] = []
        for i, req in enumerate(offers):
            why = self.refusal(req)
            signer = None if why else signer_for(signers, req)
            if why is None and signer is None:
                why = f"no signer for {req.scheme} on {req.network}"
            if why is not None or signer is None:
                refusals.append(f"offer {i}: {why}")
                continue
            acceptable.append((i, signer))
        if not acceptable:
            return refusals or ["the challenge lists no offers"]
        if self.prefer_cheapest:
            acceptable.sort(key=lambda pair: _price(offers[pair[0]]))
        return acceptable[0]


def _listed(req: PaymentRequirements, allowed: Collection[str]) -> bool:
    if is_evm(req.network):
        return req.asset.lower() in {a.lower() for a in allowed}
    return req.asset in allowed


def _price(req: PaymentRequirements) -> Fraction:
    known = find_asset(req.network, req.asset)
    return Fraction(int(req.amount), 10 ** (known.decimals if known is not None else 6))
