"""Registry test helpers: an app with loopback outbound allowed and no background probes, and resource bodies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from x402.service.settings import Settings

ClientFactory = Any
PAY_TO = "0x" + "ab" * 20
USDC = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for a registry app on this test's database (loopback crawls allowed, probes only on demand)."""
    return Settings(
        database_url=database_url,
        data_dir=tmp_path,
        log_level="warning",
        allow_private_outbound=True,
        registry_probe_interval=0,
        reconcile_interval=0,
    )


def accept(amount: str = "10000", network: str = "eip155:84532", pay_to: str = PAY_TO, **kw: Any) -> dict[str, Any]:
    """One v2 accepts entry."""
    return {
        "scheme": "exact",
        "network": network,
        "amount": amount,
        "asset": USDC,
        "payTo": pay_to,
        "maxTimeoutSeconds": 60,
        "extra": {"name": "USDC", "version": "2"},
        **kw,
    }


def bazaar(method: str = "GET") -> dict[str, Any]:
    """A bazaar extension declaring an HTTP input."""
    return {
        "bazaar": {
            "info": {
                "input": {"type": "http", "method": method, "queryParams": {"q": "x"}},
                "output": {"type": "json"},
            },
            "schema": {"type": "object", "required": ["input"]},
        }
    }


def resource(url: str, **kw: Any) -> dict[str, Any]:
    """A POST /v1/resources body."""
    body: dict[str, Any] = {
        "url": url,
        "accepts": [accept()],
        "description": "A paid resource",
        "mimeType": "application/json",
    }
    body.update(kw)
    return body
