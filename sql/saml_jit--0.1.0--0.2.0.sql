-- saml_jit 0.1.0 -> 0.2.0, applied by ALTER EXTENSION saml_jit UPDATE after the
-- 0.2.0 library is installed. Hand-written and reviewed; every schema change
-- of the 0.2.0 round goes here.
\echo Use "ALTER EXTENSION saml_jit UPDATE" to load this file. \quit

-- Security round 2: the lifecycle functions read time through the library's
-- superuser-only setting (a placeholder saml_jit.now_override set by any role
-- before the library loaded used to move their clock).
CREATE OR REPLACE FUNCTION saml_jit."effective_now"() RETURNS timestamptz
STABLE PARALLEL SAFE STRICT
LANGUAGE c AS 'MODULE_PATHNAME', 'effective_now_wrapper';

-- Which library and which SQL objects run.
CREATE FUNCTION @extschema@."saml_jit_version"() RETURNS TABLE (
	"library" TEXT,
	"sql" TEXT
)
STABLE STRICT
LANGUAGE c AS 'MODULE_PATHNAME', 'saml_jit_version_wrapper';
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_version() FROM PUBLIC;
