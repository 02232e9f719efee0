"""OpenTelemetry: one paid request exported over OTLP/HTTP to a real receiver started here, as a span tree."""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from chains.evm.devchain import DevChain
from tests.harness import evm
from tests.harness.procs import x402_serve
from tests.harness.services import free_port
from x402.tracing import wanted


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """An OTLP/HTTP trace receiver: decodes each protobuf export into plain span dicts."""
    spans: list[dict[str, Any]] = []

    async def traces(request: web.Request) -> web.Response:
        msg = ExportTraceServiceRequest()
        msg.ParseFromString(await request.read())
        for rs in msg.resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    attrs = {
                        a.key: a.value.WhichOneof("value") and getattr(a.value, a.value.WhichOneof("value"))
                        for a in s.attributes
                    }
                    spans.append(
                        {
                            "name": s.name,
                            "trace": s.trace_id.hex(),
                            "id": s.span_id.hex(),
                            "parent": s.parent_span_id.hex(),
                            "attrs": attrs,
                        }
                    )
        return web.Response(content_type="application/x-protobuf", body=b"")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", spans
    finally:
        await runner.cleanup()


def test_off_by_default() -> None:
    assert not wanted({})
    assert wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert not wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"})
    assert not wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"})


@pytest.mark.slow
async def test_one_paid_request_is_a_span_tree(
    receiver: tuple[str, list[dict[str, Any]]], devchain: DevChain, database_url: str
) -> None:
    endpoint, spans = receiver
    key, _ = await evm.funded_signer(devchain)
    payer_key = await evm.funded_payer(devchain)
    env = {
        "DATABASE_URL": database_url,
        "X402_NETWORKS": evm.networks_env(devchain),
        "X402_EVM_SIGNER_KEY": key,
        "X402_REQUIRE_API_KEYS": "false",
        "X402_LOG_LEVEL": "info",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    async with x402_serve(env=env, port=free_port()) as svc, aiohttp.ClientSession() as s:
        payment = evm.sign_payment(devchain, payer_key, evm.requirements(devchain, evm.address_of(evm.new_key()), 777))
        async with s.post(
            svc.base_url + "/settle",
            data=msgspec.json.encode(payment.body()),
            headers={"Content-Type": "application/json"},
        ) as r:
            answer = await r.json()
        assert answer.get("success") is True, answer
        async with s.post(
            svc.base_url + "/settle", data=b"{not json", headers={"Content-Type": "application/json"}
        ) as r:
            problem = await r.json()
        assert r.status == 400
        assert await svc.stop(signal.SIGTERM) == 0
    # the problem+json answer names its trace, and so do the log lines of that request
    assert len(problem["traceId"]) == 32
    assert any(s["trace"] == problem["traceId"] and s["name"] == "POST /settle" for s in spans)
    logged = [json.loads(ln) for ln in svc.text().splitlines() if ln.startswith("{")]
    tx = answer["transaction"]
    settle = next(s for s in spans if s["name"] == "x402.settle" and s["attrs"].get("x402.tx_hash") == tx)
    trace = [s for s in spans if s["trace"] == settle["trace"]]
    by_id = {s["id"]: s for s in trace}
    [root] = [s for s in trace if not s["parent"]]
    assert root["name"] == "POST /settle"
    assert root["attrs"]["http.response.status_code"] == 200
    assert by_id[settle["parent"]] is root
    assert settle["attrs"]["x402.network"] == devchain.network
    assert settle["attrs"]["x402.payment_id"]
    children = {s["name"] for s in trace if s["parent"] == settle["id"]}
    assert {
        "x402.verify",
        "x402.risk",
        "x402.settle.prepare",
        "x402.settle.broadcast",
        "x402.settle.receipt",
        "x402.record.write",
    } <= children, children
    broadcast = next(s for s in trace if s["name"] == "x402.settle.broadcast")
    assert broadcast["attrs"]["x402.tx_hash"] == tx
    rpc = [s for s in trace if s["name"].startswith("rpc ")]
    assert any(s["name"] == "rpc eth_sendRawTransaction" and s["parent"] == broadcast["id"] for s in rpc), rpc
    assert any(e.get("trace_id") == settle["trace"] for e in logged)
