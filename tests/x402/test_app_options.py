"""``create_app(settings, options=AppOptions(...))``: typed, frozen options; every service AppKey in one module."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from wallets.service import WalletOptions
from x402.service.app import create_app
from x402.service.appkeys import OPTIONS, WALLETS, AppOptions
from x402.service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ClientFactory = Any


def test_options_are_frozen_and_typed() -> None:
    opts = AppOptions(paid_resources=("GET https://api.example.com/a",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.paid_resources = ()  # type: ignore[misc]
    assert create_app(Settings(), options=opts)[OPTIONS] is opts
    assert create_app(Settings())[OPTIONS] == AppOptions()


async def test_options_reach_the_feature_modules(settings: Settings, aiohttp_client: ClientFactory) -> None:
    wallet_options = WalletOptions(fetch_timeout=7.0)
    extra_op = {"get": {"summary": "a route documented by the caller", "responses": {"200": {"description": "ok"}}}}
    opts = AppOptions(
        wallet_options=wallet_options,
        paid_resources=("GET https://api.example.com/paid",),
        ownership_proofs=("0xproof",),
        openapi_paths={"/caller/route": extra_op},
    )
    app = create_app(settings.with_(master_key="11" * 32), options=opts)
    client = await aiohttp_client(app)
    wk = await (await client.get("/.well-known/x402")).json()
    assert wk["resources"] == ["GET https://api.example.com/paid"]
    assert wk["ownershipProofs"] == ["0xproof"]
    doc = await (await client.get("/openapi.json")).json()
    assert doc["paths"]["/caller/route"]["get"]["summary"] == "a route documented by the caller"
    assert app[WALLETS].options is wallet_options


def _appkey_definitions(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "AppKey":
            out.append(f"{path.relative_to(ROOT)}:{node.lineno}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "AppKey":
            out.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return out


def test_every_service_appkey_lives_in_appkeys() -> None:
    found = [hit for path in sorted((ROOT / "x402").rglob("*.py")) for hit in _appkey_definitions(path)]
    # the paywall is a library below the service: its own start-up hook key stays with it
    elsewhere = [hit for hit in found if not hit.startswith(("x402/service/appkeys.py:", "x402/paywall/"))]
    assert elsewhere == []
    assert len(found) > 10
