"""Quota warnings by e-mail (``X402_SMTP_*``): sent in the background with smtplib in a thread, never on the path
of the request that crossed the threshold; a failure is logged (the event and the header still tell the tenant)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Final

from x402.logs import get_logger

log = get_logger("x402.service.events.mail")

TIMEOUT: Final = 10.0


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """Where and how to send (from the settings)."""

    host: str
    port: int
    sender: str
    to: tuple[str, ...]
    user: str | None = None
    password: str | None = None
    tls: str = "starttls"

    @classmethod
    def from_settings(cls, settings: Any) -> SmtpConfig | None:
        """None unless host, from and to are all set."""
        if not (settings.smtp_host and settings.smtp_from and settings.smtp_to):
            return None
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_from,
            tuple(settings.smtp_to),
            settings.smtp_user,
            settings.smtp_password,
            settings.smtp_tls,
        )


def quota_message(config: SmtpConfig, tenant_id: str, kind: str, data: Mapping[str, Any]) -> EmailMessage:
    """The warning: which tenant, how much of which tier's monthly quota is used."""
    msg = EmailMessage()
    used, limit = data.get("used"), data.get("limit")
    if kind == "quota.exceeded":
        subject = f"x402: tenant {tenant_id} exceeded its monthly quota ({used}/{limit})"
    else:
        subject = f"x402: tenant {tenant_id} reached {data.get('threshold')}% of its monthly quota ({used}/{limit})"
    msg["Subject"] = subject
    msg["From"] = config.sender
    msg["To"] = ", ".join(config.to)
    msg.set_content(
        f"Tenant: {tenant_id}\nEvent: {kind}\nTier: {data.get('tier')}\nPeriod: {data.get('period')}\n"
        f"Verifications used: {used} of {limit}\n"
    )
    return msg


def _send(config: SmtpConfig, msg: EmailMessage) -> None:
    if config.tls == "tls":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            config.host, config.port, timeout=TIMEOUT, context=ssl.create_default_context()
        )
    else:
        smtp = smtplib.SMTP(config.host, config.port, timeout=TIMEOUT)
    with smtp:
        if config.tls == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        if config.user and config.password:
            smtp.login(config.user, config.password)
        smtp.send_message(msg)


class QuotaMailer:
    """Sends quota warnings in background tasks; ``close`` waits for those under way."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._tasks: set[asyncio.Task[None]] = set()

    def notify(self, tenant_id: str, kind: str, data: Mapping[str, Any]) -> None:
        """Queue one warning (returns at once)."""
        task = asyncio.create_task(self._deliver(tenant_id, kind, dict(data)), name="quota-mail")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, tenant_id: str, kind: str, data: dict[str, Any]) -> None:
        msg = quota_message(self.config, tenant_id, kind, data)
        try:
            await asyncio.to_thread(_send, self.config, msg)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("quota_mail_failed", tenant=tenant_id, error=type(exc).__name__)
            return
        log.info("quota_mail_sent", tenant=tenant_id, kind=kind)

    async def close(self) -> None:
        """Wait for the warnings being sent."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
