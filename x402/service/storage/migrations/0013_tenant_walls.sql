-- Row-level security, the second wall between tenants: every table with a tenant_id column gets the tenant_*
-- policies on the per-connection settings app.tenant_id / app.system (x402/storage/scope.py), forced so that the
-- tables' owner is held to it too; the service runs as x402_app (no BYPASSRLS) when it connects as a role that
-- would bypass RLS. x402_tenant_walls() is generic: `x402 migrate` re-runs it after every migration it applies,
-- so a table added later with a tenant_id column is walled without touching this file.

-- The application role (cluster-wide, so it may already exist). Creating it needs CREATEROLE; a plain-role
-- deployment that cannot create it does not need it (such a role is already subject to RLS).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'x402_app')
       AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_user AND (rolsuper OR rolcreaterole)) THEN
        CREATE ROLE x402_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- another database on this server created it at the same moment
END
$$;

-- Rows of no tenant (anonymous payments when keys are off, global risk lists, crawled resources) are readable in
-- every scope and writable only outside tenant scopes; a tenant scope reads and writes its own rows only.
-- One policy per command (a FOR ALL policy would be OR-ed into every SELECT again), and the settings are read
-- through scalar subqueries: Postgres evaluates those once per statement (init plans), not once per row.
CREATE OR REPLACE FUNCTION x402_tenant_walls() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    t record;
    sys constant text := '(SELECT current_setting(''app.system'', true) = ''on'')';
    cur constant text := '(SELECT nullif(current_setting(''app.tenant_id'', true), ''''))';
    mine text;
    own text;
    n integer := 0;
BEGIN
    FOR t IN
        SELECT k.relname AS name, format_type(a.atttypid, a.atttypmod) AS type
        FROM pg_class k
        JOIN pg_attribute a ON a.attrelid = k.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
        WHERE k.relnamespace = current_schema()::regnamespace AND k.relkind IN ('r', 'p')
    LOOP
        mine := format('tenant_id = (SELECT nullif(current_setting(''app.tenant_id'', true), '''')::%s)', t.type);
        own := format('%s OR %s OR (tenant_id IS NULL AND %s IS NULL)', sys, mine, cur);
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t.name);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t.name);
        EXECUTE format('DROP POLICY IF EXISTS tenant_read ON %I', t.name);
        EXECUTE format('DROP POLICY IF EXISTS tenant_insert ON %I', t.name);
        EXECUTE format('DROP POLICY IF EXISTS tenant_update ON %I', t.name);
        EXECUTE format('DROP POLICY IF EXISTS tenant_delete ON %I', t.name);
        EXECUTE format('CREATE POLICY tenant_read ON %I FOR SELECT USING (%s OR tenant_id IS NULL OR %s)',
                       t.name, sys, mine);
        EXECUTE format('CREATE POLICY tenant_insert ON %I FOR INSERT WITH CHECK (%s)', t.name, own);
        EXECUTE format('CREATE POLICY tenant_update ON %I FOR UPDATE USING (%s) WITH CHECK (%s)', t.name, own, own);
        EXECUTE format('CREATE POLICY tenant_delete ON %I FOR DELETE USING (%s)', t.name, own);
        n := n + 1;
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'x402_app') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO x402_app', current_schema());
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO x402_app', current_schema());
        EXECUTE format('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %I TO x402_app', current_schema());
        EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO x402_app', current_schema());
        -- the migrator may SET ROLE x402_app only if it is a member (superusers always may)
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_user AND rolsuper)
           AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_user AND rolcreaterole) THEN
            EXECUTE format('GRANT x402_app TO %I', current_user);
        END IF;
    END IF;
    RETURN n;
END
$$;

SELECT x402_tenant_walls();
