"""One log format: every line ``x402 serve`` writes is JSON, stdlib records and Python warnings included."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from typing import Any

import aiohttp
import pytest

from tests.harness.procs import x402_serve
from tests.harness.services import free_port
from x402.service.server import NO_NETWORK


def _json_lines(text: str) -> list[dict[str, Any]]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    parsed = []
    for ln in lines:
        try:
            parsed.append(json.loads(ln))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {ln!r}")
        assert isinstance(parsed[-1], dict), ln
        assert {"event", "level"} <= set(parsed[-1]), ln
    return parsed


@pytest.mark.slow
async def test_serve_writes_only_json_lines_and_says_no_network_once(database_url: str) -> None:
    env = {"DATABASE_URL": database_url, "X402_LOG_FORMAT": "json", "X402_LOG_LEVEL": "info"}
    async with x402_serve(env=env, port=free_port()) as svc:
        async with aiohttp.ClientSession() as s, s.get(svc.base_url + "/verify") as r:  # a 4xx path logs too
            assert r.status < 500
        assert await svc.stop(signal.SIGTERM) == 0, svc.text()
    events = _json_lines(svc.text())
    names = Counter(e["event"] for e in events)
    # the plain Quickstart: one line saying no network is configured and how to add one
    no_net = [e for e in events if e["event"] == "no_network_configured"]
    assert len(no_net) == 1
    assert no_net[0]["message"] == NO_NETWORK
    assert "X402_NETWORKS" in NO_NETWORK
    assert "--dev" in NO_NETWORK
    # no start-up warning twice (REDIS_URL used to be said by the server and again by the app)
    warnings = [e for e in events if e["level"] == "warning"]
    assert warnings, events
    assert all(names[w["event"]] == 1 for w in warnings), names
    assert sum("REDIS_URL" in json.dumps(e) for e in events) == 1
    assert any(e["event"] == "startup" and "listening on" in e["message"] for e in events)


_PROBE = """
import logging, uuid, warnings
from x402.logs import configure_logging, get_logger, say
configure_logging("info", "json")
logging.getLogger("asyncpg.pool").warning("pool is %s", "tired")
warnings.warn("old thing is deprecated", DeprecationWarning, stacklevel=1)
get_logger("t").info("paid", payment_id=uuid.UUID(int=7))
get_logger("t").info("paid", payment_id=12)
try:
    raise ValueError("boom Bearer abc.def")
except ValueError:
    logging.getLogger("aiohttp.server").exception("Error handling request")
say("hello")
"""


def test_stdlib_records_and_warnings_are_json_with_one_payment_id_type() -> None:
    env = {**os.environ, "PYTHONWARNINGS": "always"}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=30, env=env, check=True
    )
    events = _json_lines(out.stdout + out.stderr)
    by_event = {e["event"]: e for e in events}
    assert by_event["pool is tired"]["logger"] == "asyncpg.pool"
    assert by_event["pool is tired"]["level"] == "warning"
    assert "old thing is deprecated" in by_event["python_warning"]["detail"]
    paid = [e for e in events if e["event"] == "paid"]
    assert [type(e["payment_id"]) for e in paid] == [str, str]
    assert paid[0]["payment_id"] == "00000000-0000-0000-0000-000000000007"
    err = by_event["Error handling request"]
    assert "ValueError" in err["exception"]
    assert "abc.def" not in err["exception"]
    assert by_event["startup"]["message"] == "hello"
