"""``x402 serve``: embedded Postgres when needed, migrations, the dev chain, then one or N worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web

from chains.registry import load_factories
from x402 import tracing
from x402.logs import configure_logging, get_logger, say
from x402.service.app import create_app
from x402.service.devmode import apply_dev_state, forget_previous_dev_chain, start_dev_chain
from x402.service.rejections import ServiceRunner
from x402.service.settings import Settings, load_settings
from x402.service.storage.db import migrate_url
from x402.service.storage.embedded import start_embedded

log = get_logger("x402.service.server")

#: The one start-up line of a plain Quickstart: nothing to verify or settle on until a network is added.
NO_NETWORK = (
    'no network is configured: add one with X402_NETWORKS=\'{"base-sepolia": {"rpc_urls": ["https://..."]}}\''
    " or X402_NETWORKS_FILE (see docs/networks.example.toml), or try `x402 serve --dev` for a local chain"
)


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


def local_master_key(data_dir: Path) -> Path:
    """The master key file of a single-host install under the data dir, created (mode 0600) on first use."""
    path = data_dir / "master.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
    return path


def dev_data_dir(data_dir: Path) -> Path:
    """Where ``x402 serve --dev`` keeps its own embedded database and master key (never the real ones)."""
    return data_dir / "dev"


def tune_gc() -> None:
    """Move start-up objects out of the collector's sight and collect young objects less often.

    Imports and app set-up leave ~10^5 long-lived objects; full collections over them were the tail of /verify's
    latency. ``gc.freeze`` exempts them; a larger first-generation threshold trades a little memory for fewer pauses.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


async def run_app(settings: Settings, stop: asyncio.Event, *, announce: bool = True) -> None:
    """Serve the app on host:port (SO_REUSEPORT) until ``stop`` is set."""
    traced = settings.otel_traces and tracing.setup(settings.service_name)
    app = create_app(settings)
    runner = ServiceRunner(app, access_log=None, handle_signals=False, shutdown_timeout=settings.shutdown_timeout)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=True, backlog=1024)
        await site.start()
        tune_gc()
        if announce:
            say(f"x402 service listening on http://{settings.host}:{settings.port} (pid {os.getpid()})")
        await stop.wait()
    finally:
        # graceful: the listener closes first, in-flight requests get shutdown_timeout to finish, then the app's
        # cleanup contexts drain background work (record writers, webhook workers, the reconciler) in reverse order
        started = time.monotonic()
        log.info("shutdown_draining", pid=os.getpid(), bound_s=settings.shutdown_timeout)
        await runner.cleanup()
        log.info("shutdown_drained", pid=os.getpid(), took_s=round(time.monotonic() - started, 3))
        if traced:
            await asyncio.to_thread(tracing.shutdown)  # flush the last spans


async def _run_workers(settings: Settings, stop: asyncio.Event) -> int:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": settings.database_url or "",
            "X402_HOST": settings.host,
            "X402_PORT": str(settings.port),
            "X402_MIGRATE_ON_START": "0",
            "X402_REQUIRE_API_KEYS": "1" if settings.require_api_keys else "0",
        }
    )
    if settings.dev_state:
        env["X402_DEV_STATE"] = json.dumps(dict(settings.dev_state))
    if settings.master_key_file and not settings.master_key:
        env["X402_MASTER_KEY_FILE"] = str(settings.master_key_file)
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-m", "x402.service.worker", env=env)
        for _ in range(settings.workers)
    ]
    say(f"x402 service: {len(procs)} workers on http://{settings.host}:{settings.port} (SO_REUSEPORT)")
    waiters = [asyncio.ensure_future(p.wait()) for p in procs]
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait([stopper, *waiters], return_when=asyncio.FIRST_COMPLETED)
    for p in procs:
        if p.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.gather(*waiters), settings.shutdown_timeout + 10)
    except TimeoutError:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
        await asyncio.gather(*waiters)
    stopper.cancel()
    return max((p.returncode or 0) for p in procs) if not stop.is_set() else 0


async def serve(settings: Settings, *, dev: bool = False) -> int:
    """Run the whole service until SIGINT/SIGTERM; returns an exit code."""
    stop = _stop_event()
    async with contextlib.AsyncExitStack() as stack:
        if not settings.database_url:
            # the dev tenant and its published all-scope key must never live in the database a real serve uses
            db_dir = dev_data_dir(settings.data_dir) if dev else settings.data_dir
            say(f"DATABASE_URL is not set: starting the embedded Postgres (data in {db_dir / 'pgdata'})")
            emb = await asyncio.to_thread(start_embedded, db_dir)
            stack.push_async_callback(_stop_embedded, emb.stop)
            settings = settings.with_(database_url=emb.url)
            say(f"embedded Postgres is up: {emb.url}")
            if not settings.master_key and not settings.master_key_file:
                # single-host default, like the embedded database: a local master key so wallets work at once
                key_file = await asyncio.to_thread(local_master_key, db_dir)
                settings = settings.with_(master_key_file=key_file)
                say(f"X402_MASTER_KEY is not set: wallet keys are encrypted with {key_file} (back it up)")
        applied = await migrate_url(settings.database_url or "")
        if applied:
            say(f"applied migrations {applied}")
        settings = settings.with_(migrate_on_start=False)
        if dev:
            state = await start_dev_chain(stack, settings)
            if await forget_previous_dev_chain(settings.database_url or ""):
                say("cleared the settlement journal of the previous dev chain")
            from x402.service.platform.devkey import create_dev_key

            state["public"]["apiKey"] = await create_dev_key(settings.database_url or "")
            say(f"  dev API key    {state['public']['apiKey']}  (test mode, every scope; keys are optional in dev)")
            settings = apply_dev_state(settings.with_(dev=True, dev_state=state, require_api_keys=False))
        if not settings.networks:
            say(NO_NETWORK, event="no_network_configured")
        if settings.workers > 1:
            return await _run_workers(settings, stop)
        await run_app(settings, stop)
    return 0


async def _stop_embedded(stop: Callable[[], None]) -> None:
    say("stopping the embedded Postgres")
    await asyncio.to_thread(stop)


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex((host, port)) != 0


def run(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run a coroutine on uvloop when available."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())


def serve_main(settings: Settings | None = None, *, dev: bool = False) -> int:
    """Entry point of ``x402 serve``."""
    settings = settings or load_settings()
    configure_logging(settings.log_level, settings.log_format)
    load_factories()  # scans installed packages: do it before the event loop starts
    return run(lambda: serve(settings, dev=dev))
