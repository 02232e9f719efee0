"""The audit seam: the wallet layer says what happened, the web layer writes it to the platform's audit log."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from wallets.events import Conn


@dataclass(frozen=True, slots=True)
class WalletAudit:
    """One audited change to a wallet (pause, resume, policy, key rotation); never a secret."""

    actor: str
    action: str
    wallet_id: str
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    request_id: str | None = None


class AuditSink(Protocol):
    """Writes an audit record inside the caller's transaction."""

    async def __call__(self, conn: Conn, record: WalletAudit) -> None:
        """Append ``record``."""
        ...


async def no_audit(conn: Conn, record: WalletAudit) -> None:
    """The default sink when no audit log is mounted (wallet code used outside the service app)."""
