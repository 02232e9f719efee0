"""One key, any listed resource: the routing proxy (``POST /v1/call``, ``/v1/proxy/...``) and its calls views."""

from x402.service.proxy.routes import install

__all__ = ["install"]
