-- Dashboard sessions: an API key exchanged for a server-side session (the cookie holds a random token; only its
-- SHA-256 is stored). A session carries exactly its key's tenant and scopes: the key is read again on every request,
-- so revoking the key or suspending the tenant ends the session too. Row-level security applies (tenant_id).
CREATE TABLE dashboard_sessions (
    id            uuid        PRIMARY KEY,
    tenant_id     uuid        NOT NULL REFERENCES tenants (id),
    key_id        uuid        NOT NULL REFERENCES api_keys (id),
    hash          bytea       NOT NULL UNIQUE CHECK (length(hash) = 32),
    csrf_secret   text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX dashboard_sessions_tenant ON dashboard_sessions (tenant_id, created_at);
CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at);
