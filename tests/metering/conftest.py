"""Metering tests run on the platform app (keys required, real Postgres and Redis)."""

from tests.platform.conftest import client, psettings

__all__ = ["client", "psettings"]
