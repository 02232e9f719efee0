"""HTTP API of budgeted agent wallets (``/v1/wallets``) and webhook endpoints (``/v1/webhooks``)."""

from x402.service.wallets_api.routes import WALLETS, install

__all__ = ["WALLETS", "install"]
