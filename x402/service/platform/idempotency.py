"""Stripe-style ``Idempotency-Key`` for POSTs: one execution per (tenant, key), the stored answer replayed for 24 h."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
from aiohttp import web

from x402.errors import BadRequest, Conflict, ValidationFailed
from x402.service.http import ANSWER_NOT_FINAL
from x402.service.storage.scope import tenant_scope

TTL = timedelta(hours=24)
#: The tenant id used for callers without one (API keys off), so the unique key still applies.
ANONYMOUS = uuid.UUID(int=0)
_KEY_OK = re.compile(r"^[\x21-\x7e]{1,255}$")
#: Response headers worth replaying; the rest (Date, X-Request-Id, lengths) belong to each answer.
_KEEP = ("content-type", "location", "payment-response")
_KEEP_PREFIX = ("x402-",)
#: Fields never stored for a replay (the answer that showed them once is the only one that does).
SECRET_FIELDS = frozenset({"key", "secret", "apiKey", "privateKey", "signingSecret", "token", "mnemonic"})
#: A handler whose answer holds a secret (a new API key) puts the body to store instead here.
REPLAY_BODY: web.RequestKey[bytes] = web.RequestKey("x402_replay_body")

#: Set by a handler that is idempotent under the key itself (money may have moved): the key is never freed, and
#: retries with the same key and body reach the handler again, which answers the original outcome or its current state.
DELEGATED: web.RequestKey[bool] = web.RequestKey("x402_idempotency_delegated")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class IdempotencyKeyReused(ValidationFailed):
    code = "idempotency_key_reused"
    title = "Idempotency key reused"


class IdempotencyInProgress(Conflict):
    code = "idempotency_in_progress"
    title = "Idempotent request in progress"


def _request_hash(request: web.Request, body: bytes) -> bytes:
    h = hashlib.sha256()
    h.update(request.method.encode() + b"\n" + request.path_qs.encode() + b"\n")
    h.update(body)
    return h.digest()


def _kept(resp: web.Response) -> dict[str, str]:
    return {k: v for k, v in resp.headers.items() if k.lower() in _KEEP or k.lower().startswith(_KEEP_PREFIX)}


async def _claim(
    pool: asyncpg.Pool, tenant: uuid.UUID, key: str, request: web.Request, digest: bytes
) -> asyncpg.Record | None:
    """Claim the key (None) or return the row someone else holds."""
    for _ in range(2):
        claimed = await pool.fetchval(
            """INSERT INTO idempotency_keys (tenant_id, key, method, path, request_hash, status, expires_at)
               VALUES ($1, $2, $3, $4, $5, 'running', now() + $6::interval)
               ON CONFLICT (tenant_id, key) DO NOTHING RETURNING 1""",
            tenant,
            key,
            request.method,
            request.path,
            digest,
            TTL,
        )
        if claimed:
            return None
        row = await pool.fetchrow(
            "SELECT *, expires_at <= now() AS expired FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
            tenant,
            key,
        )
        if row is None:
            continue  # released between our insert and our read: try to claim again
        if row["expired"]:
            await pool.execute(
                "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND expires_at <= now()", tenant, key
            )
            continue
        return row
    raise IdempotencyInProgress("another request with this Idempotency-Key is in progress")


async def idempotent(
    pool: asyncpg.Pool, tenant: uuid.UUID | None, request: web.Request, handler: Handler
) -> web.StreamResponse:
    """Run ``handler`` once per key; replay its stored answer to later requests with the same key and body."""
    key = request.headers["Idempotency-Key"]
    if not _KEY_OK.match(key):
        raise BadRequest("Idempotency-Key must be 1-255 printable ASCII characters", code="invalid_idempotency_key")
    tenant = tenant or ANONYMOUS
    digest = _request_hash(request, await request.read())
    with tenant_scope(tenant):  # callers without a tenant share the nil tenant's rows (see ANONYMOUS)
        row = await _claim(pool, tenant, key, request, digest)
    if row is not None:
        if bytes(row["request_hash"]) != digest:
            raise IdempotencyKeyReused("this Idempotency-Key was used with another request")
        if row["status"] == "delegated":
            return await handler(request)
        if row["status"] != "done":
            raise IdempotencyInProgress("another request with this Idempotency-Key is in progress")
        headers = json.loads(row["response_headers"] or "{}")
        headers["Idempotent-Replayed"] = "true"
        return web.Response(status=row["response_status"], body=bytes(row["response_body"] or b""), headers=headers)
    try:
        resp = await handler(request)
    except BaseException:
        if request.get(DELEGATED):
            with tenant_scope(tenant):
                await _delegate(pool, tenant, key)
            raise
        # the request never produced an answer (bad input, dependency down): the key may be used again
        with tenant_scope(tenant):
            await _release(pool, tenant, key)
        raise
    if request.get(DELEGATED):
        with tenant_scope(tenant):
            await _delegate(pool, tenant, key)
        return resp
    if not isinstance(resp, web.Response) or resp.status >= 500 or request.get(ANSWER_NOT_FINAL):
        with tenant_scope(tenant):
            await _release(pool, tenant, key)
        return resp
    body = request.get(REPLAY_BODY)
    if body is None:
        body = _without_secrets(bytes(resp.body) if isinstance(resp.body, bytes | bytearray) else b"", resp)
    with tenant_scope(tenant):
        await _finish(pool, tenant, key, resp, body)
    return resp


async def _finish(pool: asyncpg.Pool, tenant: uuid.UUID, key: str, resp: web.Response, body: bytes) -> None:
    await pool.execute(
        """UPDATE idempotency_keys SET status = 'done', response_status = $3, response_headers = $4::jsonb,
                                       response_body = $5
           WHERE tenant_id = $1 AND key = $2""",
        tenant,
        key,
        resp.status,
        json.dumps(_kept(resp)),
        body,
    )


def _strip(value: Any) -> tuple[Any, bool]:
    if isinstance(value, dict):
        out, hit = {}, False
        for k, v in value.items():
            if k in SECRET_FIELDS:
                hit = True
                continue
            out[k], sub = _strip(v)
            hit = hit or sub
        return out, hit
    if isinstance(value, list):
        items = [_strip(v) for v in value]
        return [v for v, _ in items], any(h for _, h in items)
    return value, False


def _without_secrets(body: bytes, resp: web.Response) -> bytes:
    """Safety net for handlers that did not set REPLAY_BODY: one-time secrets are never written to the table."""
    if resp.content_type != "application/json" or not body:
        return body
    try:
        doc = json.loads(body)
    except ValueError:
        return body
    stripped, hit = _strip(doc)
    if not hit:
        return body
    if isinstance(stripped, dict):
        stripped["secretShownOnce"] = True
    return json.dumps(stripped, separators=(",", ":")).encode()


async def _delegate(pool: asyncpg.Pool, tenant: uuid.UUID, key: str) -> None:
    await pool.execute(
        "UPDATE idempotency_keys SET status = 'delegated' WHERE tenant_id = $1 AND key = $2", tenant, key
    )


async def _release(pool: asyncpg.Pool, tenant: uuid.UUID, key: str) -> None:
    await pool.execute(
        "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND status = 'running'", tenant, key
    )


async def purge_expired(pool: asyncpg.Pool) -> int:
    """Delete expired keys; returns how many."""
    result = await pool.execute("DELETE FROM idempotency_keys WHERE expires_at <= now()")
    return int(result.split()[-1])
