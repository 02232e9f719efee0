"""The registry store: resources in Postgres, looked up by key, filtered for discovery and ranked for search."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Final, Protocol

import asyncpg
import msgspec

from x402.errors import Conflict
from x402.service.events.outbox import Event, insert_events
from x402.service.registry import ranking
from x402.service.registry.models import Resource, ResourceDraft, summarize
from x402.service.storage.scope import system_scope

JSON_COLUMNS: Final = ("accepts", "extensions", "input_schema", "output_schema", "evidence")
COLUMNS: Final = (
    "id, tenant_id, url, method, tool, type, x402_version, accepts, extensions, description, mime_type, "
    "service_name, tags, icon_url, category, input_schema, output_schema, pay_to, networks, schemes, min_price, "
    "source, local, verification_status, verification_reason, evidence, probes_ok, probes_total, uptime, "
    "rating_sum, rating_count, settled_count, settled_volume, status, down_reason, last_probe_at, last_updated, "
    "created_at"
)
# the provider-declared columns, in the order of _draft_args ($1..$19 after tenant_id)
_DRAFT_COLUMNS: Final = (
    "url, method, tool, type, x402_version, accepts, extensions, description, mime_type, service_name, tags, "
    "icon_url, category, input_schema, output_schema, pay_to, networks, schemes, min_price"
)
_DRAFT_VALUES: Final = (
    "$2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10, $11, $12, $13, $14, $15::jsonb, $16::jsonb, $17, $18, $19, $20"
)
_DRAFT_UPDATES: Final = ", ".join(
    f"{c} = EXCLUDED.{c}" for c in _DRAFT_COLUMNS.replace(" ", "").split(",") if c not in ("url", "method", "tool")
)
_ENC: Final = msgspec.json.Encoder()


def _json(value: Any) -> str | None:
    return None if value is None else _ENC.encode(value).decode()


def row(rec: asyncpg.Record) -> Resource:
    """A Resource from a record (jsonb columns arrive as text: the shared pool has no JSON codec)."""
    values = dict(rec)
    for col in JSON_COLUMNS:
        if isinstance(values.get(col), str):
            values[col] = msgspec.json.decode(values[col])
    return Resource.from_record(values)


def _draft_args(d: ResourceDraft) -> list[Any]:
    s = summarize(d.accepts, d.x402_version)
    return [
        d.url,
        d.method,
        d.tool,
        d.type,
        d.x402_version,
        _json(d.accepts),
        _json(d.extensions),
        d.description,
        d.mime_type,
        d.service_name,
        d.tags,
        d.icon_url,
        d.category,
        _json(d.input_schema),
        _json(d.output_schema),
        s.pay_to,
        s.networks,
        s.schemes,
        s.min_price,
    ]


@dataclass(frozen=True, slots=True)
class Filters:
    """Discovery and search filters (architecture.md §7.2 plus category and max price)."""

    type: str | None = None
    pay_to: str | None = None
    scheme: str | None = None
    network: str | None = None
    category: str | None = None
    max_price: int | None = None
    #: extension keys a resource must declare (all of them), e.g. ``("bazaar",)``
    extensions: tuple[str, ...] = ()
    include_failed: bool = False

    def where(self, args: list[Any]) -> str:
        """A SQL condition; appends its parameters to ``args``."""
        conds = ["true"]

        def add(sql: str, value: Any) -> None:
            args.append(value)
            conds.append(sql.replace("?", f"${len(args)}"))

        if self.type:
            add("type = ?", self.type)
        if self.pay_to:
            add("pay_to @> ARRAY[?::text]", self.pay_to)
        if self.scheme:
            add("schemes @> ARRAY[?::text]", self.scheme)
        if self.network:
            add("networks @> ARRAY[?::text]", self.network)
        if self.category:
            add("category = ?", self.category)
        if self.extensions:
            add("jsonb_exists_all(coalesce(extensions, '{}'::jsonb), ?::text[])", list(self.extensions))
        if self.max_price is not None:
            add("min_price <= ?::numeric", self.max_price)
        if not self.include_failed:
            conds.append("verification_status <> 'failed'")
        conds.append(LISTED_OWNER)
        return " AND ".join(conds)


#: A suspended (or deleted) tenant's listings are hidden from discovery and not probed until it is reactivated.
LISTED_OWNER = "NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = resources.tenant_id AND t.status <> 'active')"


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of verifying a resource (probe plus ownership proof)."""

    status: str
    reason: str | None
    evidence: dict[str, Any] | None


class RegistryStore(Protocol):
    """Where registry resources live."""

    async def create(
        self, draft: ResourceDraft, *, tenant_id: uuid.UUID | None, source: str = "api", local: bool = False
    ) -> Resource:
        """Insert a new resource; Conflict ``resource_exists`` when (url, method, tool) is taken."""
        ...

    async def upsert(
        self,
        draft: ResourceDraft,
        *,
        tenant_id: uuid.UUID | None,
        source: str,
        local: bool = False,
        verification: Verification | None = None,
    ) -> Resource | None:
        """Insert or refresh by key; None when the key belongs to another tenant."""
        ...

    async def get(self, resource_id: uuid.UUID) -> Resource | None:
        """One resource by id."""
        ...

    async def find(self, url: str, method: str, tool: str = "") -> Resource | None:
        """One resource by its catalogue key."""
        ...

    async def update(self, resource_id: uuid.UUID, draft: ResourceDraft) -> Resource | None:
        """Replace the provider-declared fields of a resource."""
        ...

    async def delete(self, resource_id: uuid.UUID) -> bool:
        """Remove a resource."""
        ...

    async def page(self, filters: Filters, limit: int, offset: int) -> tuple[list[Resource], int]:
        """A discovery page (newest first) and the total count."""
        ...

    async def search(self, query: str, filters: Filters, limit: int, offset: int) -> list[Resource]:
        """Ranked matches of a text query (``ranking`` module); ``limit + 1`` rows tell whether more follow."""
        ...

    async def set_verification(self, resource_id: uuid.UUID, verification: Verification) -> None:
        """Record a verification outcome."""
        ...

    async def record_probe(self, resource_id: uuid.UUID, up: bool, down_reason: str | None) -> None:
        """Count one probe (uptime) and set status."""
        ...

    async def claim_due(self, every: float, batch: int) -> list[Resource]:
        """Resources whose last probe is older than ``every`` seconds, marked as probed now (one node each)."""
        ...

    async def rate(self, resource_id: uuid.UUID, rating: int, *, tenant_id: uuid.UUID | None) -> Resource | None:
        """Set the rater's 1..5 rating (one per rater and resource; a new one replaces it)."""
        ...

    async def recent_ratings(self, tenant_id: uuid.UUID | None, seconds: float) -> int:
        """How many ratings this rater gave or changed in the last ``seconds``."""
        ...

    async def record_settlement(self, url: str, amount: int) -> int:
        """Count a settled payment for every resource at ``url``; returns rows touched."""
        ...

    async def local_resources(self) -> list[Resource]:
        """Resources served by this service (registered by its paywall)."""
        ...


class PgRegistryStore:
    """RegistryStore on asyncpg."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(
        self, draft: ResourceDraft, *, tenant_id: uuid.UUID | None, source: str = "api", local: bool = False
    ) -> Resource:
        """Insert a new resource; Conflict ``resource_exists`` when (url, method, tool) is taken."""
        try:
            rec = await self.pool.fetchrow(
                f"""INSERT INTO resources (tenant_id, {_DRAFT_COLUMNS}, source, local)
                    VALUES ($1, {_DRAFT_VALUES}, $21, $22) RETURNING {COLUMNS}""",
                tenant_id,
                *_draft_args(draft),
                source,
                local,
            )
        except asyncpg.UniqueViolationError:
            existing = await self.find(draft.url, draft.method, draft.tool)
            raise Conflict(
                f"{draft.method} {draft.url} is already registered",
                code="resource_exists",
                id=str(existing.id) if existing else None,
            ) from None
        assert rec is not None
        return row(rec)

    async def upsert(
        self,
        draft: ResourceDraft,
        *,
        tenant_id: uuid.UUID | None,
        source: str,
        local: bool = False,
        verification: Verification | None = None,
    ) -> Resource | None:
        """Insert or refresh by key; None when the key belongs to another tenant."""
        v = verification
        # system scope: a tenant may claim an entry of no tenant (crawled, catalogued), which its own scope may
        # not update; the statement's WHERE keeps entries of other tenants untouched (then None)
        with system_scope("registry upsert: claiming an unowned catalogue entry"):
            rec = await self._upsert(draft, tenant_id, source, local, v)
        return None if rec is None else row(rec)

    async def _upsert(
        self, draft: ResourceDraft, tenant_id: uuid.UUID | None, source: str, local: bool, v: Verification | None
    ) -> Any:
        return await self.pool.fetchrow(
            f"""INSERT INTO resources (tenant_id, {_DRAFT_COLUMNS}, source, local,
                                       verification_status, verification_reason, evidence)
                VALUES ($1, {_DRAFT_VALUES}, $21, $22, coalesce($23, 'unverified'), $24, $25::jsonb)
                ON CONFLICT (url, method, tool) DO UPDATE SET {_DRAFT_UPDATES},
                    tenant_id = coalesce(resources.tenant_id, EXCLUDED.tenant_id),
                    source = EXCLUDED.source,
                    local = resources.local OR EXCLUDED.local,
                    verification_status = coalesce($23, resources.verification_status),
                    verification_reason = CASE WHEN $23 IS NULL THEN resources.verification_reason ELSE $24 END,
                    evidence = CASE WHEN $23 IS NULL THEN resources.evidence ELSE $25::jsonb END,
                    last_updated = now()
                WHERE resources.tenant_id IS NULL OR resources.tenant_id IS NOT DISTINCT FROM EXCLUDED.tenant_id
                RETURNING {COLUMNS}""",
            tenant_id,
            *_draft_args(draft),
            source,
            local,
            v.status if v else None,
            v.reason if v else None,
            _json(v.evidence) if v else None,
        )

    async def get(self, resource_id: uuid.UUID) -> Resource | None:
        """One resource by id."""
        rec = await self.pool.fetchrow(f"SELECT {COLUMNS} FROM resources WHERE id = $1", resource_id)
        return None if rec is None else row(rec)

    async def find(self, url: str, method: str, tool: str = "") -> Resource | None:
        """One resource by its catalogue key."""
        rec = await self.pool.fetchrow(
            f"SELECT {COLUMNS} FROM resources WHERE url = $1 AND method = $2 AND tool = $3", url, method, tool
        )
        return None if rec is None else row(rec)

    async def update(self, resource_id: uuid.UUID, draft: ResourceDraft) -> Resource | None:
        """Replace the provider-declared fields of a resource."""
        # positional parameters instead of EXCLUDED: $2.. are the draft values in _DRAFT_COLUMNS order
        cols = [c.strip() for c in _DRAFT_COLUMNS.split(",")]
        values = _DRAFT_VALUES.split(", ")
        sets = ", ".join(f"{c} = {v}" for c, v in zip(cols, values, strict=True) if c not in ("url", "method", "tool"))
        rec = await self.pool.fetchrow(
            f"""UPDATE resources SET {sets}, last_updated = now()
                WHERE id = $1 AND url = $2 AND method = $3 AND tool = $4 RETURNING {COLUMNS}""",
            resource_id,
            *_draft_args(draft),
        )
        return None if rec is None else row(rec)

    async def delete(self, resource_id: uuid.UUID) -> bool:
        """Remove a resource."""
        return bool(await self.pool.fetchval("DELETE FROM resources WHERE id = $1 RETURNING true", resource_id))

    async def page(self, filters: Filters, limit: int, offset: int) -> tuple[list[Resource], int]:
        """A discovery page (newest first) and the total count."""
        args: list[Any] = []
        where = filters.where(args)
        async with self.pool.acquire() as conn:
            total = await conn.fetchval(f"SELECT count(*) FROM resources WHERE {where}", *args)
            recs = await conn.fetch(
                f"""SELECT {COLUMNS} FROM resources WHERE {where}
                    ORDER BY last_updated DESC, id LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}""",
                *args,
                limit,
                offset,
            )
        return [row(r) for r in recs], int(total)

    async def search(self, query: str, filters: Filters, limit: int, offset: int) -> list[Resource]:
        """Ranked matches of a text query (``ranking`` module); ``limit + 1`` rows tell whether more follow."""
        args: list[Any] = [query]
        where = filters.where(args)
        text = "coalesce(tr / nullif(max(tr) OVER (), 0), 0.0)"
        # rank narrow rows (id + signals) and fetch full rows only for the page: sorting wide rows dominated
        recs = await self.pool.fetch(
            f"""WITH q AS (SELECT websearch_to_tsquery('english', $1) AS q),
                m AS (
                    SELECT id, uptime, rating_sum, rating_count, settled_volume, last_updated,
                           verification_status, status,
                           CASE WHEN $1 = '' THEN 0.0 ELSE ts_rank_cd(search_vector, q.q)::float8 END AS tr
                    FROM resources, q
                    WHERE ($1 = '' OR search_vector @@ q.q) AND {where}
                ),
                top AS (
                    SELECT id, {ranking.score_sql(text, "now()")} AS score FROM m
                    ORDER BY score DESC, id LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}
                )
                SELECT {", ".join("r." + c.strip() for c in COLUMNS.split(","))}, top.score
                FROM top JOIN resources r ON r.id = top.id ORDER BY top.score DESC, r.id""",
            *args,
            limit + 1,
            offset,
        )
        return [row(r) for r in recs]

    async def set_verification(self, resource_id: uuid.UUID, verification: Verification) -> None:
        """Record a verification outcome."""
        await self.pool.execute(
            """UPDATE resources SET verification_status = $2, verification_reason = $3, evidence = $4::jsonb,
                   last_updated = CASE WHEN $2 = 'verified' THEN now() ELSE last_updated END
               WHERE id = $1""",
            resource_id,
            verification.status,
            verification.reason,
            _json(verification.evidence),
        )

    async def record_probe(self, resource_id: uuid.UUID, up: bool, down_reason: str | None) -> None:
        """Count one probe (uptime) and set status; a change of status is a ``resource.down`` / ``resource.up``
        provider event for the resource's owner, in the same transaction (down: from up or unknown; up: from down)."""
        async with self.pool.acquire() as conn, conn.transaction():
            before = await conn.fetchrow(
                "SELECT status, tenant_id, url, method FROM resources WHERE id = $1 FOR UPDATE", resource_id
            )
            await conn.execute(
                """UPDATE resources SET probes_total = probes_total + 1,
                       probes_ok = probes_ok + (CASE WHEN $2::boolean THEN 1 ELSE 0 END),
                       status = CASE WHEN $2 THEN 'up' ELSE 'down' END, down_reason = $3, last_probe_at = now()
                   WHERE id = $1""",
                resource_id,
                up,
                None if up else down_reason,
            )
            if before is None or (before["status"] == "down") != up:
                return
            data = {
                "resourceId": str(resource_id),
                "url": before["url"],
                "method": before["method"],
                "reason": None if up else down_reason,
                "previousStatus": before["status"],
            }
            kind = "resource.up" if up else "resource.down"
            await insert_events(conn, [Event(kind, data, tenant_id=before["tenant_id"])])

    async def claim_due(self, every: float, batch: int) -> list[Resource]:
        """Resources whose last probe is older than ``every`` seconds, marked as probed now (one node each)."""
        recs = await self.pool.fetch(
            f"""UPDATE resources SET last_probe_at = now()
                WHERE id IN (SELECT id FROM resources
                             WHERE NOT local AND type = 'http' AND {LISTED_OWNER}
                               AND (last_probe_at IS NULL OR last_probe_at < now() - make_interval(secs => $1))
                             ORDER BY last_probe_at NULLS FIRST LIMIT $2 FOR UPDATE SKIP LOCKED)
                RETURNING {COLUMNS}""",
            every,
            batch,
        )
        return [row(r) for r in recs]

    async def rate(self, resource_id: uuid.UUID, rating: int, *, tenant_id: uuid.UUID | None) -> Resource | None:
        """Set the rater's 1..5 rating (one per rater and resource; a new one replaces it)."""
        async with self.pool.acquire() as conn, conn.transaction():
            # the resource row lock serialises raters of one resource, so the aggregate stays the sum of the rows
            if await conn.fetchval("SELECT 1 FROM resources WHERE id = $1 FOR UPDATE", resource_id) is None:
                return None
            old = await conn.fetchval(
                """SELECT rating FROM resource_ratings WHERE resource_id = $1 AND tenant_id IS NOT DISTINCT FROM $2""",
                resource_id,
                tenant_id,
            )
            if old is None:
                await conn.execute(
                    "INSERT INTO resource_ratings (resource_id, tenant_id, rating) VALUES ($1, $2, $3)",
                    resource_id,
                    tenant_id,
                    rating,
                )
            else:
                await conn.execute(
                    """UPDATE resource_ratings SET rating = $3, updated_at = now()
                       WHERE resource_id = $1 AND tenant_id IS NOT DISTINCT FROM $2""",
                    resource_id,
                    tenant_id,
                    rating,
                )
            rec = await conn.fetchrow(
                f"""UPDATE resources SET rating_sum = rating_sum + $2 - $3, rating_count = rating_count + $4
                    WHERE id = $1 RETURNING {COLUMNS}""",
                resource_id,
                rating,
                old or 0,
                1 if old is None else 0,
            )
        return None if rec is None else row(rec)

    async def recent_ratings(self, tenant_id: uuid.UUID | None, seconds: float) -> int:
        """How many ratings this rater gave or changed in the last ``seconds``."""
        count = await self.pool.fetchval(
            """SELECT count(*) FROM resource_ratings
               WHERE tenant_id IS NOT DISTINCT FROM $1 AND updated_at > now() - make_interval(secs => $2)""",
            tenant_id,
            seconds,
        )
        return int(count or 0)

    async def record_settlement(self, url: str, amount: int) -> int:
        """Count a settled payment for every resource at ``url``; returns rows touched."""
        status = await self.pool.execute(
            """UPDATE resources SET settled_count = settled_count + 1, settled_volume = settled_volume + $2::numeric
               WHERE url = $1""",
            url,
            amount,
        )
        return int(status.split()[-1])

    async def local_resources(self) -> list[Resource]:
        """Resources served by this service (registered by its paywall)."""
        recs = await self.pool.fetch(f"SELECT {COLUMNS} FROM resources WHERE local ORDER BY url, method, tool")
        return [row(r) for r in recs]
