-- Registry of paid resources (discovery, search, crawl/verify, bazaar catalogue). One row per (url, method, tool):
-- ``tool`` is the MCP tool name ('' for HTTP) because the bazaar catalogue key of an MCP resource is (url, tool).

-- array_to_string is only STABLE, so a generated column cannot call it directly; for text[] it is immutable.
CREATE FUNCTION registry_tags_text(tags text[]) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT array_to_string(tags, ' ') $$;

CREATE TABLE resources (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid,                       -- owner (platform tenants); NULL = crawled/catalogued/admin
    url                 text        NOT NULL,
    method              text        NOT NULL DEFAULT 'GET',
    tool                text        NOT NULL DEFAULT '',
    type                text        NOT NULL DEFAULT 'http' CHECK (type IN ('http', 'mcp')),
    x402_version        smallint    NOT NULL DEFAULT 2 CHECK (x402_version IN (1, 2)),
    accepts             jsonb       NOT NULL,
    extensions          jsonb,                      -- {"bazaar": {info, schema?}} as declared by the resource
    description         text        NOT NULL DEFAULT '',
    mime_type           text        NOT NULL DEFAULT '',
    service_name        text        NOT NULL DEFAULT '',
    tags                text[]      NOT NULL DEFAULT '{}',
    icon_url            text,
    category            text,
    input_schema        jsonb,
    output_schema       jsonb,
    pay_to              text[]      NOT NULL DEFAULT '{}',   -- every payTo of accepts
    networks            text[]      NOT NULL DEFAULT '{}',   -- CAIP-2 ids (and v1 names for v1 accepts)
    schemes             text[]      NOT NULL DEFAULT '{}',
    min_price           numeric(78, 0) CHECK (min_price >= 0),  -- atomic amount of the cheapest accept
    source              text        NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'crawl', 'bazaar', 'local')),
    local               boolean     NOT NULL DEFAULT false,      -- served by this service (its paywall)
    verification_status text        NOT NULL DEFAULT 'unverified'
                                    CHECK (verification_status IN ('unverified', 'verified', 'failed')),
    verification_reason text,
    evidence            jsonb,
    probes_ok           integer     NOT NULL DEFAULT 0,
    probes_total        integer     NOT NULL DEFAULT 0,
    uptime              real GENERATED ALWAYS AS
                            (CASE WHEN probes_total = 0 THEN NULL ELSE probes_ok::real / probes_total END) STORED,
    rating_sum          integer     NOT NULL DEFAULT 0,
    rating_count        integer     NOT NULL DEFAULT 0,
    settled_count       bigint      NOT NULL DEFAULT 0,
    settled_volume      numeric(78, 0) NOT NULL DEFAULT 0,
    status              text        NOT NULL DEFAULT 'unknown' CHECK (status IN ('up', 'down', 'unknown')),
    down_reason         text,
    last_probe_at       timestamptz,
    last_updated        timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    search_vector       tsvector GENERATED ALWAYS AS (
                            setweight(to_tsvector('english', service_name), 'A')
                            || setweight(to_tsvector('english', description), 'B')
                            || setweight(to_tsvector('english', registry_tags_text(tags)), 'C')
                            || setweight(to_tsvector('english', regexp_replace(url, '[^A-Za-z0-9]+', ' ', 'g')), 'D')
                        ) STORED,
    CONSTRAINT resources_key UNIQUE (url, method, tool)
);
CREATE INDEX resources_search ON resources USING gin (search_vector);
CREATE INDEX resources_networks ON resources USING gin (networks);
CREATE INDEX resources_pay_to ON resources USING gin (pay_to);
CREATE INDEX resources_updated ON resources (last_updated DESC, id);
CREATE INDEX resources_probe_due ON resources (last_probe_at NULLS FIRST) WHERE NOT local AND type = 'http';
CREATE INDEX resources_tenant ON resources (tenant_id) WHERE tenant_id IS NOT NULL;
