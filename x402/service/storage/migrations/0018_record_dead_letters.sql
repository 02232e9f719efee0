-- Payment records and provider events whose batch could not be written (after the writer's bounded retries):
-- kept here as JSON with the error, so nothing an answer reported is ever dropped. A background task retries them
-- (`attempts`, `last_error`); the operator lists and replays them (`/v1/admin/record-dead-letters`). A batch spans
-- tenants, so this is a global table (operator only); `replayed_at` is set once its rows are in `payments` and
-- `provider_events`.
CREATE TABLE record_dead_letters (
    id               bigserial   PRIMARY KEY,
    records          jsonb       NOT NULL,
    events           jsonb       NOT NULL,
    count            integer     NOT NULL,
    error            text        NOT NULL,
    attempts         integer     NOT NULL DEFAULT 0,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_attempt_at  timestamptz,
    replayed_at      timestamptz
);
CREATE INDEX record_dead_letters_open ON record_dead_letters (id) WHERE replayed_at IS NULL;
