"""Discovery metadata (x402-spec §12.1): serviceName / tags / iconUrl limits soft-dropped on the wire and at
registry ingest, the MCP catalogue key ``toolName``, and the ``extensions`` filter of /discovery/resources."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from chains.fake import FakePayer
from tests.harness.fake import fake_payment, fake_requirements
from tests.registry.conftest import accept, bazaar, resource
from x402.service.app import create_app
from x402.service.registry.bazaar import draft_from_payment
from x402.service.registry.crawl import draft_from_probe
from x402.service.registry.probe import ProbeResult
from x402.service.settings import Settings
from x402.wire.models import PaymentPayload, ResourceInfo

URL = "https://shop.example.com/weather"


@pytest.mark.parametrize(
    ("field", "value", "kept"),
    [
        ("serviceName", "Weather API", True),
        ("serviceName", "x" * 32, True),
        ("serviceName", "x" * 33, False),
        ("serviceName", "Caf\u00e9", False),  # not ASCII
        ("serviceName", "tab\there", False),  # not printable
        ("serviceName", "", False),
        ("serviceName", 7, False),
        ("iconUrl", "https://cdn.example.com/i.png", True),
        ("iconUrl", "ftp://cdn.example.com/i.png", False),
        ("iconUrl", "https://127.0.0.1/i.png", False),
        ("iconUrl", "https://[::1]/i.png", False),
        ("iconUrl", "https://localhost/i.png", False),
        ("iconUrl", "https://user:pw@cdn.example.com/i.png", False),
        ("iconUrl", "https://cdn.example.com/" + "a" * 2048, False),
    ],
)
def test_wire_resource_soft_drops_invalid_values(field: str, value: Any, kept: bool) -> None:
    info = msgspec.json.decode(msgspec.json.encode({"url": URL, field: value}), type=ResourceInfo)
    encoded = msgspec.to_builtins(info)
    assert (encoded.get(field) == value) is kept
    assert encoded["url"] == URL  # the rest of the resource survives


def test_wire_tags_keep_the_valid_distinct_first_five() -> None:
    raw = {"url": URL, "tags": ["a", 3, "", "a", "b" * 33, "c", "d", "e", "f", "g"]}
    info = msgspec.convert(raw, ResourceInfo)
    assert info.tags == ["a", "c", "d", "e", "f"]
    assert msgspec.convert({"url": URL, "tags": "weather"}, ResourceInfo).tags is msgspec.UNSET


def test_bazaar_ingest_soft_drops_and_reads_tool_name() -> None:
    req = fake_requirements(FakePayer().address, 5)
    payment = fake_payment(FakePayer(), req)
    mcp = {"bazaar": {"info": {"input": {"type": "mcp", "toolName": "search", "inputSchema": {"type": "object"}}}}}
    doc = msgspec.to_builtins(payment.payload)
    doc["resource"] = {"url": URL, "serviceName": "Caf\u00e9 bar", "tags": ["ok", 5], "iconUrl": "http://10.0.0.1/i"}
    doc["extensions"] = mcp
    draft = draft_from_payment(msgspec.convert(doc, PaymentPayload), req)
    assert (draft.tool, draft.type, draft.service_name, draft.tags, draft.icon_url) == (
        "search",
        "mcp",
        "",
        ["ok"],
        None,
    )


def test_crawl_ingest_soft_drops() -> None:
    result = ProbeResult(url=URL, method="GET", reason=None)
    result.resource = {"url": URL, "serviceName": "n" * 40, "tags": ["weather", ""], "iconUrl": "https://localhost/x"}
    result.accepts = [accept()]
    result.x402_version = 2
    draft = draft_from_probe(result)
    assert (draft.service_name, draft.tags, draft.icon_url) == ("", ["weather"], None)
    result.resource = {"url": URL, "serviceName": "Weather", "iconUrl": "https://cdn.example.com/i.png"}
    draft = draft_from_probe(result)
    assert (draft.service_name, draft.icon_url) == ("Weather", "https://cdn.example.com/i.png")


async def test_tool_name_key_and_extensions_filter(aiohttp_client: Any, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    mcp_input = {"type": "mcp", "toolName": "get_weather", "inputSchema": {"type": "object"}}
    r = await client.post(
        "/v1/resources",
        json=resource("https://mcp.example.com/mcp", type="mcp", extensions={"bazaar": {"info": {"input": mcp_input}}}),
    )
    assert r.status == 201, await r.text()
    assert (await r.json())["toolName"] == "get_weather"
    await client.post("/v1/resources", json=resource("https://api.example.com/plain"))
    siwx = {"sign-in-with-x": {"info": {"domain": "api.example.com"}, "supportedChains": []}}
    await client.post("/v1/resources", json=resource("https://api.example.com/both", extensions={**bazaar(), **siwx}))

    async def listed(**params: str) -> list[str]:
        r = await client.get("/discovery/resources", params=params)
        assert r.status == 200, await r.text()
        return sorted(i["resource"] for i in (await r.json())["items"])

    assert await listed(extensions="bazaar") == ["https://api.example.com/both", "https://mcp.example.com/mcp"]
    assert await listed(extensions="bazaar,sign-in-with-x") == ["https://api.example.com/both"]
    assert await listed(extensions="payment-identifier") == []
    assert len(await listed()) == 3
    r = await client.get("/discovery/resources", params={"type": "mcp"})
    (item,) = (await r.json())["items"]
    assert item["metadata"]["toolName"] == "get_weather"
    r = await client.get("/discovery/search", params={"extensions": "sign-in-with-x"})
    assert [i["resource"] for i in (await r.json())["resources"]] == ["https://api.example.com/both"]
    for bad in ("bazaar,,x", "a b", ",".join(["e"] * 11)):
        r = await client.get("/discovery/resources", params={"extensions": bad})
        assert r.status == 400
        assert (await r.json())["code"] == "invalid_extensions"
