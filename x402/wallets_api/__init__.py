"""HTTP API of budgeted agent wallets (``/v1/wallets``) and webhook endpoints (``/v1/webhooks``)."""

from x402.appkeys import WALLETS
from x402.wallets_api.routes import install

__all__ = ["WALLETS", "install"]
