-- Provider events, a transactional outbox: each row is written in the same transaction as what it reports (a
-- payment record, a key change, ...), then fanned out to the tenant's webhook endpoints by the dispatcher, which
-- marks it dispatched. `seq` orders events per tenant by creation; `id` is the idempotent event id receivers see.
CREATE TABLE provider_events (
    seq          bigserial   PRIMARY KEY,
    id           uuid        NOT NULL UNIQUE,
    tenant_id    uuid,
    type         text        NOT NULL,
    api_version  text        NOT NULL,
    data         jsonb       NOT NULL,
    created_at   timestamptz NOT NULL,
    dispatched   boolean     NOT NULL DEFAULT false
);
CREATE INDEX provider_events_undispatched ON provider_events (seq) WHERE NOT dispatched;
CREATE INDEX provider_events_tenant_time ON provider_events (tenant_id, created_at DESC, seq DESC);
