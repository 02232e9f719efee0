"""Analytics isolation with API keys on: a second tenant's key sees none of the first tenant's figures.

Every ``/v1/analytics/...`` route is a tenant list (classified in ``test_isolation.LIST_ROUTES``); here tenant A
has known records and B none, and each route, as JSON and as CSV, answers B with zeros and empty lists only,
with both walls and with the application's tenant filter alone (row-level security off).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.platform.analytics_data import DATA, P1, P2, P3, REPORT, SHOP, SHOP2, seed_records
from tests.platform.conftest import bearer, new_key, new_tenant, op
from tests.platform.test_isolation import LIST_ROUTES
from x402.service.app import create_app
from x402.service.appkeys import PLATFORM
from x402.service.settings import Settings

ROUTES = sorted(p for p in LIST_ROUTES if p.startswith("/v1/analytics/"))
WINDOW = {"from": "2026-03-16T00:00:00Z", "to": "2026-04-06T00:00:00Z"}
MARKERS = [P1, P2, P3, SHOP, SHOP2, REPORT, DATA]


def _zero(value: Any) -> bool:
    """Nothing but zeros, empty lists, nulls and labels in an answer."""
    if isinstance(value, dict):
        return all(_zero(v) for k, v in value.items() if k not in ("from", "to", "bucket", "interval", "tz"))
    if isinstance(value, list):
        return not value
    return value in (0, "0", None)


def _zero_series(body: dict[str, Any]) -> bool:
    return all(_zero({k: v for k, v in p.items() if k != "bucket"}) for p in body["points"])


@pytest.fixture(params=["both-walls", "app-wall-only"])
async def shops(request: Any, psettings: Settings, aiohttp_client: Any) -> tuple[Any, dict[str, str], dict[str, str]]:
    app = create_app(psettings.with_(row_security=request.param == "both-walls"))
    client = await aiohttp_client(app)
    a = await new_tenant(client, "tenant-a")
    b = await new_tenant(client, "tenant-b")
    ha = bearer((await new_key(client, a, ["verify"]))["key"])
    hb = bearer((await new_key(client, b, ["verify", "settle", "admin", "registry"]))["key"])
    await seed_records(app[PLATFORM].writer, uuid.UUID(a), pending=True)
    return client, ha, hb


async def test_every_analytics_route_is_classified() -> None:
    assert len(ROUTES) == 8


async def test_tenant_b_sees_nothing_of_tenant_a(shops: Any) -> None:
    client, ha, hb = shops
    for path in ROUTES:
        query = {**WINDOW, "interval": "day"} if path.endswith("timeseries") else WINDOW
        mine = await client.get(path, params=query, headers=ha)
        theirs = await client.get(path, params=query, headers=hb)
        assert mine.status == theirs.status == 200, path
        a_body, b_body = await mine.json(), await theirs.json()
        # A's answer has figures (so B's empty one means something); B's has none, and no trace of A
        series = path.endswith("timeseries")
        assert not (_zero_series(a_body) if series else _zero(a_body)), path
        assert _zero_series(b_body) if series else _zero(b_body), (path, b_body)
        assert not [m for m in MARKERS if m in json.dumps(b_body)], path
        csv = await client.get(path, params={**query, "format": "csv"}, headers=hb)
        text = await csv.text()
        assert not [m for m in MARKERS if m in text], path
        if not series:  # a header row only
            assert text.count("\r\n") == 1, (path, text)


async def test_analytics_need_a_tenant_key(shops: Any) -> None:
    client, _, _ = shops
    for path in ROUTES:
        r = await client.get(path, headers=op())
        assert r.status == 403, path
        assert (await r.json())["code"] == "tenant_key_required"
        assert (await client.get(path)).status == 401
