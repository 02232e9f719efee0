-- One webhook machinery for every provider event (issue 15): wallet events move into provider_events (the outbox),
-- deliveries and dead letters point at provider events, endpoints gain rotation, failure tracking and a lease.

-- 1. Wallet events become provider events under the same envelope. A once-only event keeps an id derived from its
--    dedupe key (wallets/events.py dedupe_id computes the same), others get one derived from their old row id.
--    They were fanned out already (their deliveries exist), so they are marked dispatched.
ALTER TABLE wallet_events ADD COLUMN event_uuid uuid;
UPDATE wallet_events
   SET event_uuid = md5(CASE WHEN dedupe IS NULL THEN 'wallet_event_row:' || id ELSE 'wallet_event:' || dedupe END)::uuid;
INSERT INTO provider_events (id, tenant_id, type, api_version, data, created_at, dispatched)
SELECT event_uuid, tenant_id, kind, '2026-12-01', data - 'type', created_at, true FROM wallet_events ORDER BY id
ON CONFLICT (id) DO NOTHING;

-- 2. Endpoints: a description, the previous secret during a rotation's overlap, the failure streak that disables
--    an endpoint, and a lease so one worker at a time sends to an endpoint (per-endpoint ordering).
ALTER TABLE webhook_endpoints
    ADD COLUMN description          text        NOT NULL DEFAULT '',
    ADD COLUMN prev_key_id          text,
    ADD COLUMN prev_nonce           bytea,
    ADD COLUMN prev_ciphertext      bytea,
    ADD COLUMN prev_expires_at      timestamptz,
    ADD COLUMN consecutive_failures integer     NOT NULL DEFAULT 0,
    ADD COLUMN failing_since        timestamptz,
    ADD COLUMN disabled_at          timestamptz,
    ADD COLUMN disabled_reason      text,
    ADD COLUMN lease_until          timestamptz NOT NULL DEFAULT '-infinity',
    ADD COLUMN updated_at           timestamptz NOT NULL DEFAULT now();
-- endpoints "deleted" by the old API (active = false) are gone for their owners: remove them for real
DELETE FROM webhook_dead_letters WHERE endpoint_id IN (SELECT id FROM webhook_endpoints WHERE NOT active);
DELETE FROM webhook_endpoints WHERE NOT active;

-- 3. Deliveries point at provider events and carry the event's seq (the per-endpoint order) and the last attempt.
ALTER TABLE webhook_deliveries
    ADD COLUMN event_uuid        uuid,
    ADD COLUMN event_seq         bigint,
    ADD COLUMN created_at        timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN first_attempt_at  timestamptz,
    ADD COLUMN last_attempt_at   timestamptz,
    ADD COLUMN response_code     integer,
    ADD COLUMN latency_ms        integer,
    ADD COLUMN response_excerpt  text;
UPDATE webhook_deliveries d SET event_uuid = e.event_uuid, event_seq = p.seq, created_at = e.created_at
  FROM wallet_events e JOIN provider_events p ON p.id = e.event_uuid
 WHERE e.id = d.event_id;
ALTER TABLE webhook_deliveries DROP COLUMN event_id;
ALTER TABLE webhook_deliveries RENAME COLUMN event_uuid TO event_id;
ALTER TABLE webhook_deliveries
    ALTER COLUMN event_id SET NOT NULL,
    ALTER COLUMN event_seq SET NOT NULL,
    ADD CONSTRAINT webhook_deliveries_event FOREIGN KEY (event_id) REFERENCES provider_events (id) ON DELETE CASCADE,
    ADD CONSTRAINT webhook_deliveries_once UNIQUE (endpoint_id, event_id);
DROP INDEX IF EXISTS webhook_deliveries_due;
-- the head of each endpoint's queue, and the delivery log newest first
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (endpoint_id, event_seq) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (endpoint_id, id DESC);

-- 4. Dead letters point at provider events too, and count their replays.
ALTER TABLE webhook_dead_letters
    ADD COLUMN event_uuid       uuid,
    ADD COLUMN response_code    integer,
    ADD COLUMN replay_count     integer     NOT NULL DEFAULT 0,
    ADD COLUMN last_replayed_at timestamptz;
UPDATE webhook_dead_letters l SET event_uuid = e.event_uuid FROM wallet_events e WHERE e.id = l.event_id;
DELETE FROM webhook_dead_letters WHERE event_uuid IS NULL;
ALTER TABLE webhook_dead_letters DROP COLUMN event_id;
ALTER TABLE webhook_dead_letters RENAME COLUMN event_uuid TO event_id;
ALTER TABLE webhook_dead_letters ALTER COLUMN event_id SET NOT NULL;
CREATE INDEX webhook_dead_letters_endpoint ON webhook_dead_letters (endpoint_id, created_at DESC);

DROP TABLE wallet_events;

-- 5. Quota threshold rows (table events, 0002) are kept as the once-per-period guard; the event itself now goes
--    to provider_events with them.
