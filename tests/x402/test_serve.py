"""``x402 serve`` as a newcomer runs it: no environment, embedded Postgres, clean Ctrl-C; and --workers."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import psutil
import pytest

from tests.harness.procs import x402_serve
from tests.harness.services import free_port


def _postgres_running_under(data_dir: Path) -> bool:
    for p in psutil.process_iter(["name", "cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "postgres" in (p.info["name"] or "") and str(data_dir) in cmd:
            return True
    return False


@pytest.mark.slow
async def test_serve_with_no_environment_uses_embedded_postgres(embedded_data_dir: Path) -> None:
    port = free_port()
    async with x402_serve(env={"X402_DATA_DIR": str(embedded_data_dir)}, port=port) as svc:
        async with aiohttp.ClientSession() as s:
            for path in ("/healthz", "/readyz", "/.well-known/x402", "/supported", "/metrics"):
                async with s.get(svc.base_url + path) as r:
                    assert r.status == 200, (path, await r.text())
            async with s.get(svc.base_url + "/readyz") as r:
                assert (await r.json())["checks"]["postgres"] is True
        assert _postgres_running_under(embedded_data_dir)
        code = await svc.stop(signal.SIGINT)
        assert code == 0, svc.text()
    out = svc.text()
    assert "embedded Postgres" in out
    assert str(embedded_data_dir / "pgdata") in out
    # a local master key is made for the single-host default, readable by its owner only
    key_file = embedded_data_dir / "master.key"
    assert str(key_file) in out
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(bytes.fromhex(key_file.read_text().strip())) == 32
    assert "single_node_mode" in out
    await asyncio.sleep(0.5)
    assert not _postgres_running_under(embedded_data_dir), "embedded Postgres left running after Ctrl-C"


@pytest.mark.slow
async def test_serve_workers_share_the_port(database_url: str) -> None:
    port = free_port()
    async with x402_serve("--workers", "2", env={"DATABASE_URL": database_url}, port=port) as svc:
        me = psutil.Process(svc.proc.pid)
        workers = [c for c in me.children(recursive=True) if "x402.service.worker" in " ".join(c.cmdline())]
        assert len(workers) == 2
        async with aiohttp.ClientSession() as s:
            results = await asyncio.gather(*(s.get(svc.base_url + "/healthz") for _ in range(40)))
            assert all(r.status == 200 for r in results)
            for r in results:
                r.release()
        assert await svc.stop(signal.SIGTERM) == 0
        assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
