-- saml_jit 0.1.0 -> 0.2.0, applied by ALTER EXTENSION saml_jit UPDATE after the
-- 0.2.0 library is installed. Hand-written and reviewed; every schema change
-- of the 0.2.0 round goes here, in the same form the fresh install creates.
\echo Use "ALTER EXTENSION saml_jit UPDATE" to load this file. \quit

-- Security round 2: the lifecycle functions read time through the library's
-- superuser-only setting. 0.1.0 read saml_jit.now_override with
-- current_setting, which also sees a placeholder that any role may SET before
-- the library is loaded.
CREATE FUNCTION @extschema@."saml_jit_effective_now"() RETURNS timestamp with time zone
STRICT STABLE PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'saml_jit_effective_now_wrapper';
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_effective_now() FROM PUBLIC;

CREATE OR REPLACE FUNCTION saml_jit.effective_now() RETURNS timestamptz
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT @extschema@.saml_jit_effective_now()
$$;

-- Which library and which SQL objects run.
CREATE FUNCTION @extschema@."saml_jit_version"() RETURNS TABLE (
	"library" TEXT,
	"sql" TEXT
)
STABLE STRICT
LANGUAGE c AS 'MODULE_PATHNAME', 'saml_jit_version_wrapper';
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_version() FROM PUBLIC;
