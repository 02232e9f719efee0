"""HTTP API of budgeted agent wallets (``/v1/wallets``)."""

from x402.service.appkeys import WALLETS
from x402.service.wallets_api.routes import install

__all__ = ["WALLETS", "install"]
