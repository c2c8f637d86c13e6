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

-- JIT for SaaS: the application's own on_login hook, e-mail domains,
-- required groups, sessions (sql/schema.sql, sql/jit.sql).
ALTER TABLE saml_jit.service_provider ADD COLUMN on_login regprocedure;
ALTER TABLE saml_jit.identity_provider
    ADD COLUMN on_login regprocedure,
    ADD COLUMN email_domains text[]
        CONSTRAINT identity_provider_email_domains_not_empty CHECK (cardinality(email_domains) > 0),
    ADD COLUMN required_groups text[]
        CONSTRAINT identity_provider_required_groups_not_empty CHECK (cardinality(required_groups) > 0);

CREATE TABLE saml_jit.session (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL,
    idp_id          bigint NOT NULL,
    session_index   text,
    name_id         text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    not_on_or_after timestamptz,
    ended_at        timestamptz,
    ended_by        text
                    CONSTRAINT session_ended_by_known CHECK (ended_by = ANY (
                        '{application,user_disabled,user_expired,idp_logout,sp_logout}'::text[])),

    CONSTRAINT session_ended_together CHECK ((ended_at IS NULL) = (ended_by IS NULL))
);
CREATE INDEX session_user_idx ON saml_jit.session (user_id) WHERE ended_at IS NULL;
-- Single Logout finds the sessions of a NameID (and SessionIndex) at an IdP.
CREATE INDEX session_idp_name_id_idx ON saml_jit.session (idp_id, name_id) WHERE ended_at IS NULL;
COMMENT ON TABLE saml_jit.session IS
    'one row per successful login; active while not ended, not past not_on_or_after, and the user is active';
SELECT pg_catalog.pg_extension_config_dump('saml_jit.session', '');

-- A new audit event: an application ending a session (and, later, Single
-- Logout). The existing rows are checked once, by VALIDATE (the update holds
-- the table's lock for its whole transaction either way; on a large audit
-- log this scan is the slow part of the update).
ALTER TABLE saml_jit.audit_log DROP CONSTRAINT audit_log_event_known;
ALTER TABLE saml_jit.audit_log ADD CONSTRAINT audit_log_event_known CHECK (event = ANY (
    '{login,created,updated,rejected,deprovisioned,reactivated,disabled,enabled,configured,logout}'::text[])) NOT VALID;
ALTER TABLE saml_jit.audit_log VALIDATE CONSTRAINT audit_log_event_known;
-- The same check written as one array constant instead of an IN list: the
-- executor reads each CHECK expression back from its stored form on every
-- statement, and an IN list is one node per value (performance round 2).
ALTER TABLE saml_jit.users DROP CONSTRAINT users_status_known;
ALTER TABLE saml_jit.users ADD CONSTRAINT users_status_known
    CHECK (status = ANY ('{active,expired,disabled}'::text[])) NOT VALID;
ALTER TABLE saml_jit.users VALIDATE CONSTRAINT users_status_known;

CREATE FUNCTION @extschema@."saml_jit_email_domain"(
	"pattern" TEXT
) RETURNS TEXT
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'saml_jit_email_domain_wrapper';
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_email_domain(text) FROM PUBLIC;

-- What stops a function from being an on_login hook, or NULL when nothing
-- does. Checked when the hook is configured (trigger below) and again by
-- every login that calls it: the function may have been dropped, replaced or
-- given to another owner since. A hook runs inside saml_jit_login, a SECURITY
-- DEFINER function, so with the extension owner's privileges: a function
-- that another role owns (and could CREATE OR REPLACE) would let that role
-- run code with them.
CREATE FUNCTION saml_jit.hook_problem(hook regprocedure) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN p.oid IS NULL THEN
            format('the function with OID %s does not exist (dropped after it was configured?)', hook::oid)
        WHEN p.prokind <> 'f' THEN
            format('%s is not a plain function (a procedure or an aggregate cannot be a hook)', hook)
        WHEN p.pronargs <> 1 OR p.proargtypes[0] <> 'pg_catalog.jsonb'::regtype THEN
            format('%s must take exactly one argument, of type jsonb', hook)
        WHEN p.prorettype <> 'pg_catalog.void'::regtype OR p.proretset THEN
            format('%s must return void, not %s', hook, p.prorettype::regtype)
        WHEN p.proowner <> e.extowner THEN
            format('%s is owned by %s, not by %s, the owner of saml_jit: a hook runs with the '
                   'extension owner''s privileges, so only that role may own it', hook,
                   p.proowner::regrole, e.extowner::regrole)
    END
      FROM pg_catalog.pg_extension e
      LEFT JOIN pg_catalog.pg_proc p ON p.oid = hook::oid
     WHERE e.extname = 'saml_jit'
$$;

-- Configuration mistakes are refused when written, not at the next login:
-- a hook that cannot be called, set by someone other than the extension
-- owner; e-mail domains that are not domains (stored in their canonical
-- form: lower case, A-labels, no trailing dot); blank required groups.
CREATE FUNCTION saml_jit.check_provisioning_config() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    owner oid := (SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'saml_jit');
    problem text;
BEGIN
    IF NEW.on_login IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.on_login IS DISTINCT FROM OLD.on_login) THEN
        IF current_user::regrole::oid <> owner
           AND NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE oid = current_user::regrole::oid) THEN
            RAISE EXCEPTION 'only %, the owner of saml_jit, may set on_login', owner::regrole
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        problem := saml_jit.hook_problem(NEW.on_login);
        IF problem IS NOT NULL THEN
            RAISE EXCEPTION 'on_login cannot be %: %', NEW.on_login, problem
                USING ERRCODE = 'invalid_function_definition',
                      HINT = 'A hook is CREATE FUNCTION f(event jsonb) RETURNS void, owned by the owner '
                             'of saml_jit (README, "The on_login hook").';
        END IF;
    END IF;
    IF TG_TABLE_NAME = 'identity_provider' THEN
        IF NEW.email_domains IS NOT NULL THEN
            IF cardinality(NEW.email_domains) = 0 THEN
                RAISE EXCEPTION 'email_domains must list at least one domain (NULL means no restriction)'
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            IF array_position(NEW.email_domains, NULL) IS NOT NULL THEN
                RAISE EXCEPTION 'email_domains must not contain NULL' USING ERRCODE = 'invalid_parameter_value';
            END IF;
            SELECT array_agg(domain ORDER BY first) INTO NEW.email_domains
              FROM (SELECT @extschema@.saml_jit_email_domain(d) AS domain, min(ord) AS first
                      FROM unnest(NEW.email_domains) WITH ORDINALITY AS t(d, ord)
                     GROUP BY 1) AS canonical;
        END IF;
        IF NEW.required_groups IS NOT NULL
           AND EXISTS (SELECT FROM unnest(NEW.required_groups) g WHERE coalesce(btrim(g, E' \t\r\n'), '') = '') THEN
            RAISE EXCEPTION 'required_groups must not contain NULL or blank group names'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER identity_provider_check_provisioning
    BEFORE INSERT OR UPDATE OF on_login, email_domains, required_groups ON saml_jit.identity_provider
    FOR EACH ROW EXECUTE FUNCTION saml_jit.check_provisioning_config();
CREATE TRIGGER service_provider_check_provisioning
    BEFORE INSERT OR UPDATE OF on_login ON saml_jit.service_provider
    FOR EACH ROW EXECUTE FUNCTION saml_jit.check_provisioning_config();

-- Whether the application may still treat the user of a login as signed in:
-- the session was not ended (logout, disable, expiry), is not past the
-- IdP's SessionNotOnOrAfter, its user is active and not past expires_at, and
-- its IdP is still enabled.
CREATE FUNCTION @extschema@.saml_jit_session_active(session_id uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (
        SELECT FROM saml_jit.session s
          JOIN saml_jit.users u ON u.id = s.user_id
          JOIN saml_jit.identity_provider i ON i.id = s.idp_id
         WHERE s.id = saml_jit_session_active.session_id
           AND s.ended_at IS NULL
           AND (s.not_on_or_after IS NULL OR s.not_on_or_after > saml_jit.effective_now())
           AND u.status = 'active'
           AND (u.expires_at IS NULL OR u.expires_at > saml_jit.effective_now())
           AND i.enabled)
$$;

-- The application's own sign-out (without Single Logout): ends the session
-- and audits it. True when this call ended it, false when it had ended.
CREATE FUNCTION @extschema@.saml_jit_end_session(session_id uuid) RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH ended AS (
        UPDATE saml_jit.session s SET ended_at = now(), ended_by = 'application'
         WHERE s.id = saml_jit_end_session.session_id AND s.ended_at IS NULL
        RETURNING s.id, s.user_id, s.idp_id
    ), audit AS (
        INSERT INTO saml_jit.audit_log (event, idp_id, user_id, subject, detail)
        SELECT 'logout', e.idp_id, e.user_id, u.subject,
               jsonb_build_object('session_id', e.id, 'ended_by', 'application')
          FROM ended e JOIN saml_jit.users u ON u.id = e.user_id
    )
    SELECT EXISTS (SELECT FROM ended)
$$;

REVOKE EXECUTE ON FUNCTION saml_jit.hook_problem(regprocedure) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_session_active(uuid) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_end_session(uuid) FROM PUBLIC;

-- Disabling or expiring a user ends its sessions.
CREATE OR REPLACE FUNCTION saml_jit.set_users_disabled(idp_entity_id text, subjects text[], disable boolean)
RETURNS TABLE (subject text, outcome text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    idp bigint;
    s text;
    uid uuid;
    old_status text;
    new_status text;
BEGIN
    SELECT i.id INTO idp FROM saml_jit.identity_provider i WHERE i.entity_id = idp_entity_id;
    IF idp IS NULL THEN
        RAISE EXCEPTION 'unknown identity provider %', quote_literal(idp_entity_id)
            USING ERRCODE = 'undefined_object';
    END IF;
    FOREACH s IN ARRAY (SELECT coalesce(array_agg(DISTINCT x ORDER BY x), '{}') FROM unnest(subjects) x WHERE x IS NOT NULL) LOOP
        uid := NULL;
        SELECT u.id, u.status INTO uid, old_status FROM saml_jit.users u
         WHERE u.idp_id = idp AND u.subject = s FOR UPDATE;
        subject := s;
        IF uid IS NULL THEN
            outcome := 'unknown';
        ELSIF disable AND old_status = 'disabled' THEN
            outcome := 'already_disabled';
        ELSIF NOT disable AND old_status <> 'disabled' THEN
            outcome := 'not_disabled';
        ELSE
            UPDATE saml_jit.users u
               SET status = CASE WHEN disable THEN 'disabled'
                                 WHEN u.expires_at <= saml_jit.effective_now() THEN 'expired'
                                 ELSE 'active' END,
                   updated_at = now()
             WHERE u.id = uid
            RETURNING u.status INTO new_status;
            IF disable THEN
                UPDATE saml_jit.session ss SET ended_at = now(), ended_by = 'user_disabled'
                 WHERE ss.user_id = uid AND ss.ended_at IS NULL;
            END IF;
            INSERT INTO saml_jit.audit_log (event, idp_id, user_id, subject, detail)
            VALUES (CASE WHEN disable THEN 'disabled' ELSE 'enabled' END, idp, uid, s,
                    jsonb_build_object('from', old_status, 'to', new_status,
                                       'via', CASE WHEN disable THEN 'saml_jit_disable_users'
                                                   ELSE 'saml_jit_enable_users' END));
            outcome := CASE WHEN disable THEN 'disabled' ELSE 'enabled' END;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION @extschema@.saml_jit_deprovision_expired(batch_size integer DEFAULT 1000,
                                                        max_batches integer DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t timestamptz := saml_jit.effective_now();
    total integer := 0;
    batches integer := 0;
    n integer;
BEGIN
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be a positive number, not %', batch_size
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    LOOP
        WITH due AS (
            SELECT id FROM saml_jit.users
             WHERE status = 'active' AND expires_at IS NOT NULL AND expires_at <= t
             ORDER BY expires_at
             LIMIT batch_size
               FOR UPDATE SKIP LOCKED
        ), expired AS (
            UPDATE saml_jit.users u SET status = 'expired', updated_at = now()
              FROM due WHERE u.id = due.id
            RETURNING u.id, u.idp_id, u.subject, u.expires_at
        ), sessions AS (
            UPDATE saml_jit.session s SET ended_at = now(), ended_by = 'user_expired'
              FROM expired WHERE s.user_id = expired.id AND s.ended_at IS NULL
        )
        INSERT INTO saml_jit.audit_log (event, reason, idp_id, user_id, subject, detail)
        SELECT 'deprovisioned', 'expired', idp_id, id, subject,
               jsonb_build_object('expires_at', expires_at, 'status', 'expired')
          FROM expired;
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
        batches := batches + 1;
        EXIT WHEN n < batch_size OR batches >= max_batches;
    END LOOP;
    PERFORM @extschema@.saml_jit_purge();
    RETURN total;
END
$$;

-- Five functions get a new row type or arguments below, so they are
-- dropped and created again; the EXECUTE grants an administrator gave them
-- are kept (read before the DROP, given again after).
SELECT set_config('saml_jit_upgrade.purge_acl',
                  coalesce((SELECT proacl::text FROM pg_catalog.pg_proc
                             WHERE oid = '@extschema@.saml_jit_purge()'::regprocedure), '{}'), true),
       set_config('saml_jit_upgrade.login_acl',
                  coalesce((SELECT proacl::text FROM pg_catalog.pg_proc
                             WHERE oid = '@extschema@.saml_jit_login(text, text, inet)'::regprocedure), '{}'), true),
       set_config('saml_jit_upgrade.set_sp_key_acl',
                  coalesce((SELECT proacl::text FROM pg_catalog.pg_proc
                             WHERE oid = '@extschema@.saml_jit_set_sp_key(text, text, text)'::regprocedure), '{}'), true),
       set_config('saml_jit_upgrade.parse_idp_metadata_acl',
                  coalesce((SELECT proacl::text FROM pg_catalog.pg_proc
                             WHERE oid = '@extschema@.saml_jit_parse_idp_metadata(text, text)'::regprocedure), '{}'), true),
       set_config('saml_jit_upgrade.authn_request_acl',
                  coalesce((SELECT proacl::text FROM pg_catalog.pg_proc
                             WHERE oid = '@extschema@.saml_jit_authn_request(text, text)'::regprocedure), '{}'), true);

-- saml_jit_purge also purges sessions (a new OUT column).
DROP FUNCTION @extschema@.saml_jit_purge();
CREATE FUNCTION @extschema@.saml_jit_purge(OUT replay_rows bigint, OUT audit_rows bigint,
                                          OUT session_rows bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t timestamptz := saml_jit.effective_now();
    retention interval := nullif(current_setting('saml_jit.audit_retention', true), '')::interval;
    session_retention interval :=
        coalesce(nullif(current_setting('saml_jit.session_retention', true), ''), '30 days')::interval;
BEGIN
    DELETE FROM saml_jit.consumed_assertion WHERE valid_until < t;
    GET DIAGNOSTICS replay_rows = ROW_COUNT;
    -- Requests nobody can answer any more (a day of grace for the audit trail).
    DELETE FROM saml_jit.authn_request WHERE expires_at < t - interval '1 day';
    DELETE FROM saml_jit.logout_request WHERE expires_at < t - interval '1 day';
    DELETE FROM saml_jit.session
     WHERE ended_at < t - session_retention OR not_on_or_after < t - session_retention;
    GET DIAGNOSTICS session_rows = ROW_COUNT;
    audit_rows := 0;
    IF retention IS NOT NULL THEN
        DELETE FROM saml_jit.audit_log WHERE occurred_at < t - retention;
        GET DIAGNOSTICS audit_rows = ROW_COUNT;
    END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_purge() FROM PUBLIC;

-- One step of a large audit purge (the procedure below): deletes the audit
-- rows older than saml_jit.audit_retention whose id lies in
-- [from_id, from_id + batch_size), and says where the next step starts
-- (NULL: done). The first step (from_id NULL) finds the range once: ids
-- grow with time, so every row to delete lies between the lowest id and the
-- highest id of an old row. The retention test is applied to every row, so
-- no argument can make it delete a row younger than the retention.
CREATE FUNCTION @extschema@.saml_jit_purge_audit_step(from_id bigint, up_to_id bigint, batch_size integer,
                                                     OUT audit_rows bigint, OUT next_id bigint,
                                                     OUT last_id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    retention interval := nullif(current_setting('saml_jit.audit_retention', true), '')::interval;
    cutoff timestamptz := saml_jit.effective_now() - retention;
BEGIN
    audit_rows := 0;
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be a positive number, not %', batch_size
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF retention IS NULL THEN
        RETURN;
    END IF;
    last_id := up_to_id;
    IF from_id IS NULL THEN
        SELECT min(id) INTO from_id FROM saml_jit.audit_log;
        SELECT max(id) INTO last_id FROM saml_jit.audit_log WHERE occurred_at < cutoff;
    END IF;
    IF from_id IS NULL OR last_id IS NULL OR from_id > last_id THEN
        RETURN;
    END IF;
    DELETE FROM saml_jit.audit_log
     WHERE id >= from_id AND id < from_id + batch_size AND id <= last_id AND occurred_at < cutoff;
    GET DIAGNOSTICS audit_rows = ROW_COUNT;
    next_id := CASE WHEN from_id + batch_size <= last_id THEN from_id + batch_size END;
END
$$;

-- saml_jit_purge() for a large backlog of audit rows (retention set on a log
-- of months, or a purge that did not run for weeks): one DELETE of a month
-- of a busy log is seconds of one transaction and hundreds of megabytes of
-- WAL at once (BENCHMARKS.md). This deletes the same rows batch_size ids at
-- a time, committing after each batch and sleeping `pause` between them, so
-- no transaction stays open long and concurrent logins keep their latency;
-- then runs saml_jit_purge() for the rest. CALL it (e.g. from pg_cron) as a
-- role allowed to run saml_jit_purge_audit_step.
CREATE PROCEDURE @extschema@.saml_jit_purge_committing(batch_size integer DEFAULT 10000,
                                                      pause interval DEFAULT '0')
LANGUAGE plpgsql AS $$
DECLARE
    step record;
    from_id bigint;
    up_to_id bigint;
BEGIN
    LOOP
        SELECT * INTO step FROM @extschema@.saml_jit_purge_audit_step(from_id, up_to_id, batch_size);
        COMMIT;
        EXIT WHEN step.next_id IS NULL;
        from_id := step.next_id;
        up_to_id := step.last_id;
        IF pause > interval '0' THEN
            PERFORM pg_catalog.pg_sleep_for(pause);
        END IF;
    END LOOP;
    PERFORM @extschema@.saml_jit_purge();
    COMMIT;
END
$$;

REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_purge_audit_step(bigint, bigint, integer) FROM PUBLIC;
REVOKE EXECUTE ON PROCEDURE @extschema@.saml_jit_purge_committing(integer, interval) FROM PUBLIC;

-- saml_jit_login also returns email_verified, session_id and relay_state.
DROP FUNCTION @extschema@.saml_jit_login(text, text, inet);
CREATE FUNCTION @extschema@."saml_jit_login"(
	"response" TEXT,
	"in_response_to" TEXT DEFAULT NULL,
	"client_addr" inet DEFAULT NULL
) RETURNS TABLE (
	"user_id" uuid,
	"idp_entity_id" TEXT,
	"subject" TEXT,
	"name_id" TEXT,
	"email" TEXT,
	"display_name" TEXT,
	"groups" TEXT[],
	"attributes" jsonb,
	"action" TEXT,
	"session_not_on_or_after" timestamp with time zone,
	"email_verified" bool,
	"session_id" uuid,
	"relay_state" TEXT
)
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'saml_jit_login_wrapper';
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_login(text, text, inet) FROM PUBLIC;

-- saml_jit_authn_request takes the binding and ForceAuthn/IsPassive, and
-- returns the HTTP-POST form too (AuthnRequest options).
ALTER TABLE saml_jit.identity_provider
    ADD COLUMN requested_authn_context text[],
    ADD COLUMN name_id_policy_format text,
    ADD COLUMN force_authn boolean NOT NULL DEFAULT false;
DROP FUNCTION @extschema@.saml_jit_authn_request(text, text);
CREATE FUNCTION @extschema@."saml_jit_authn_request"(
	"idp_entity_id" TEXT,
	"relay_state" TEXT DEFAULT NULL,
	"binding" TEXT DEFAULT NULL,
	"force_authn" bool DEFAULT false,
	"is_passive" bool DEFAULT false
) RETURNS TABLE (
	"request_id" TEXT,
	"binding" TEXT,
	"redirect_url" TEXT,
	"post_url" TEXT,
	"saml_request" TEXT
)
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'saml_jit_authn_request_wrapper';
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_authn_request(text, text, text, boolean, boolean) FROM PUBLIC;

-- SP key rollover: a next and a previous key pair beside the current one.
ALTER TABLE saml_jit.sp_key DROP CONSTRAINT sp_key_pkey;
ALTER TABLE saml_jit.sp_key
    ADD COLUMN state text NOT NULL DEFAULT 'current'
        CONSTRAINT sp_key_state_known CHECK (state IN ('current', 'next', 'previous')),
    ADD PRIMARY KEY (sp_id, state);
COMMENT ON TABLE saml_jit.sp_key IS 'the SP private keys (secret: owner only) and their certificates';
DROP FUNCTION @extschema@.saml_jit_set_sp_key(text, text, text);
CREATE FUNCTION @extschema@."saml_jit_set_sp_key"(
	"sp_entity_id" TEXT,
	"private_key" TEXT,
	"certificate" TEXT DEFAULT NULL,
	"next" bool DEFAULT false
) RETURNS void
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'saml_jit_set_sp_key_wrapper';
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_set_sp_key(text, text, text, boolean) FROM PUBLIC;

-- SP key rollover, after saml_jit_set_sp_key(..., next => true) stored the
-- next key pair and the IdPs had time to learn its certificate from the SP
-- metadata: the next pair becomes current (it signs, and is published first);
-- the current one becomes previous and still decrypts until it is retired.
CREATE FUNCTION @extschema@.saml_jit_promote_sp_key(sp_entity_id text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sp bigint;
    promoted text;
BEGIN
    SELECT s.id INTO sp FROM saml_jit.service_provider s WHERE s.entity_id = saml_jit_promote_sp_key.sp_entity_id;
    IF sp IS NULL THEN
        RAISE EXCEPTION 'unknown service provider %', quote_literal(sp_entity_id)
            USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT EXISTS (SELECT FROM saml_jit.sp_key k WHERE k.sp_id = sp AND k.state = 'next') THEN
        RAISE EXCEPTION 'the service provider % has no next key to promote', quote_literal(sp_entity_id)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Store one first with saml_jit_set_sp_key(sp_entity_id, private_key, certificate, next => true).';
    END IF;
    DELETE FROM saml_jit.sp_key k WHERE k.sp_id = sp AND k.state = 'previous';
    UPDATE saml_jit.sp_key k SET state = 'previous', updated_at = now() WHERE k.sp_id = sp AND k.state = 'current';
    UPDATE saml_jit.sp_key k SET state = 'current', updated_at = now() WHERE k.sp_id = sp AND k.state = 'next'
    RETURNING k.fingerprint_sha256 INTO promoted;
    INSERT INTO saml_jit.audit_log (event, detail)
    VALUES ('configured', jsonb_build_object('via', 'saml_jit_promote_sp_key', 'sp_entity_id', sp_entity_id,
                                             'current_fingerprint_sha256', promoted));
END
$$;

-- Ends the rollover: the previous key pair no longer decrypts anything.
-- True when there was one to retire.
CREATE FUNCTION @extschema@.saml_jit_retire_sp_key(sp_entity_id text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    retired text;
BEGIN
    DELETE FROM saml_jit.sp_key k
     USING saml_jit.service_provider s
     WHERE k.sp_id = s.id AND s.entity_id = saml_jit_retire_sp_key.sp_entity_id AND k.state = 'previous'
    RETURNING k.fingerprint_sha256 INTO retired;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO saml_jit.audit_log (event, detail)
    VALUES ('configured', jsonb_build_object('via', 'saml_jit_retire_sp_key', 'sp_entity_id', sp_entity_id,
                                             'retired_fingerprint_sha256', retired));
    RETURN true;
END
$$;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_promote_sp_key(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_retire_sp_key(text) FROM PUBLIC;

-- Metadata refresh: where an IdP publishes its metadata and how the last
-- refresh went; the parser also reports cacheDuration and the Single Logout
-- endpoints (imported below).
ALTER TABLE saml_jit.identity_provider
    ADD COLUMN metadata_url text
        CONSTRAINT identity_provider_metadata_url_http CHECK (metadata_url ~ '^https?://'),
    ADD COLUMN metadata_refreshed_at timestamptz,
    ADD COLUMN metadata_cache_until timestamptz,
    ADD COLUMN metadata_refresh_error text;
DROP FUNCTION @extschema@.saml_jit_parse_idp_metadata(text, text);
CREATE FUNCTION @extschema@."saml_jit_parse_idp_metadata"(
	"metadata" TEXT,
	"entity_id" TEXT DEFAULT NULL
) RETURNS TABLE (
	"entity_id" TEXT,
	"certificates" TEXT[],
	"sso_url_redirect" TEXT,
	"sso_url_post" TEXT,
	"name_id_formats" TEXT[],
	"valid_until" timestamp with time zone,
	"want_authn_requests_signed" bool,
	"cache_duration" interval,
	"slo_url_redirect" TEXT,
	"slo_url_post" TEXT,
	"slo_response_url_redirect" TEXT,
	"slo_response_url_post" TEXT
)
IMMUTABLE PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'saml_jit_parse_idp_metadata_wrapper';
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_parse_idp_metadata(text, text) FROM PUBLIC;

-- One metadata refresh of an IdP, as saml-jit-refresh-metadata reports it:
-- the document it fetched from identity_provider.metadata_url, or the error
-- that kept it from fetching one. The document is imported with the usual
-- rollover rules (saml_jit_import_idp_metadata); whatever fails (fetch,
-- parse, expired validUntil, another entity) is recorded on the IdP row and
-- changes nothing else: its certificates stay as they were.
CREATE FUNCTION @extschema@.saml_jit_refresh_idp_metadata(idp_entity_id text, metadata text,
                                                         fetch_error text DEFAULT NULL)
RETURNS TABLE (refreshed boolean, certificates_added integer, certificates_deactivated integer,
               next_refresh timestamptz, error text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    the_idp bigint;
    imported record;
    cache interval;
    problem text := fetch_error;
BEGIN
    SELECT i.id INTO the_idp FROM saml_jit.identity_provider i WHERE i.entity_id = idp_entity_id;
    IF the_idp IS NULL THEN
        RAISE EXCEPTION 'unknown identity provider %', quote_literal(idp_entity_id)
            USING ERRCODE = 'undefined_object';
    END IF;
    IF problem IS NULL THEN
        BEGIN
            SELECT m.cache_duration INTO cache
              FROM @extschema@.saml_jit_parse_idp_metadata(metadata, idp_entity_id) m;
            SELECT * INTO imported
              FROM @extschema@.saml_jit_import_idp_metadata(metadata, entity_id => idp_entity_id);
        EXCEPTION WHEN OTHERS THEN
            problem := SQLERRM;
        END;
    END IF;
    IF problem IS NOT NULL THEN
        UPDATE saml_jit.identity_provider i SET metadata_refresh_error = problem WHERE i.id = the_idp;
        INSERT INTO saml_jit.audit_log (event, idp_id, detail)
        VALUES ('configured', the_idp, jsonb_build_object('via', 'saml_jit_refresh_idp_metadata',
                                                          'refreshed', false, 'error', problem));
        RETURN QUERY SELECT false, 0, 0, NULL::timestamptz, problem;
        RETURN;
    END IF;
    UPDATE saml_jit.identity_provider i
       SET metadata_refreshed_at = now(), metadata_refresh_error = NULL,
           metadata_cache_until = now() + cache
     WHERE i.id = the_idp;
    RETURN QUERY SELECT true, imported.certificates_added, imported.certificates_deactivated,
                        now() + cache, NULL::text;
END
$$;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_refresh_idp_metadata(text, text, text) FROM PUBLIC;

-- The IdPs saml-jit-refresh-metadata should fetch now: those with a
-- metadata_url whose copy is past its cacheDuration (or has none), whose
-- validUntil is less than a day away, or whose last refresh failed; with
-- `force`, all of them; `entity_ids` restricts to these IdPs. SECURITY
-- DEFINER, so the command's role needs EXECUTE on this function and on
-- saml_jit_refresh_idp_metadata, nothing else.
CREATE FUNCTION @extschema@.saml_jit_metadata_refresh_due(force boolean DEFAULT false, entity_ids text[] DEFAULT '{}')
RETURNS TABLE (idp_entity_id text, metadata_url text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT i.entity_id, i.metadata_url
      FROM saml_jit.identity_provider i
     WHERE i.metadata_url IS NOT NULL
       AND (cardinality(entity_ids) = 0 OR i.entity_id = ANY (entity_ids))
       AND (force
            OR i.metadata_cache_until IS NULL OR i.metadata_cache_until <= now()
            OR i.metadata_valid_until <= now() + interval '1 day'
            OR i.metadata_refresh_error IS NOT NULL)
     ORDER BY i.entity_id
$$;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_metadata_refresh_due(boolean, text[]) FROM PUBLIC;

-- Performance round 2: the audit log's time index is BRIN (append-only
-- rows in time order; no B-tree insertion per audit row).
DROP INDEX saml_jit.audit_log_occurred_at_idx;
CREATE INDEX audit_log_occurred_at_idx ON saml_jit.audit_log USING brin (occurred_at);

-- Performance round 2: the login path's replay and session rows carry no
-- foreign keys (a referential check and a KEY SHARE lock on the IdP row per
-- login); triggers delete what the keys cascaded.
ALTER TABLE saml_jit.consumed_assertion DROP CONSTRAINT consumed_assertion_idp_id_fkey;
-- What the foreign keys the login path does without would have cascaded:
-- a deleted IdP's replay rows and sessions, a deleted user's sessions.
CREATE FUNCTION saml_jit.forget_dependents() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_TABLE_NAME = 'identity_provider' THEN
        DELETE FROM saml_jit.consumed_assertion c USING gone g WHERE c.idp_id = g.id;
        DELETE FROM saml_jit.session s USING gone g WHERE s.idp_id = g.id;
    ELSE
        DELETE FROM saml_jit.session s USING gone g WHERE s.user_id = g.id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER identity_provider_forget_dependents AFTER DELETE ON saml_jit.identity_provider
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION saml_jit.forget_dependents();
CREATE TRIGGER users_forget_dependents AFTER DELETE ON saml_jit.users
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION saml_jit.forget_dependents();

-- Single Logout (sql/schema.sql, src/logout.rs): the SP's SLO endpoint, the
-- IdPs' SingleLogoutService endpoints, the LogoutRequests this SP sent.
ALTER TABLE saml_jit.service_provider
    ADD COLUMN slo_url text
        CONSTRAINT service_provider_slo_url_not_blank CHECK (btrim(slo_url) <> '');
ALTER TABLE saml_jit.identity_provider
    ADD COLUMN slo_url_redirect text,
    ADD COLUMN slo_url_post text,
    ADD COLUMN slo_response_url_redirect text,
    ADD COLUMN slo_response_url_post text;
CREATE TABLE saml_jit.logout_request (
    request_id      text PRIMARY KEY,
    idp_id          bigint NOT NULL REFERENCES saml_jit.identity_provider (id) ON DELETE CASCADE,
    session_id      uuid REFERENCES saml_jit.session (id) ON DELETE SET NULL,
    relay_state     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    answered_at     timestamptz,
    -- The answer's status code (Success, or why the IdP could not log out).
    status          text
);
CREATE INDEX logout_request_expires_at_idx ON saml_jit.logout_request (expires_at);
CREATE INDEX logout_request_session_idx ON saml_jit.logout_request (session_id);
SELECT pg_catalog.pg_extension_config_dump('saml_jit.logout_request', '');

CREATE FUNCTION @extschema@."saml_jit_logout"(
	"message" TEXT,
	"query_string" TEXT DEFAULT NULL
) RETURNS TABLE (
	"kind" TEXT,
	"user_id" uuid,
	"ended_sessions" uuid[],
	"status" TEXT,
	"reply_url" TEXT,
	"reply_post_url" TEXT,
	"reply_saml_response" TEXT,
	"relay_state" TEXT
)
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'saml_jit_logout_wrapper';
CREATE FUNCTION @extschema@."saml_jit_logout_request"(
	"session_id" uuid,
	"relay_state" TEXT DEFAULT NULL
) RETURNS TABLE (
	"request_id" TEXT,
	"redirect_url" TEXT,
	"post_url" TEXT,
	"saml_request" TEXT
)
VOLATILE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'saml_jit_logout_request_wrapper';
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_logout(text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_logout_request(uuid, text) FROM PUBLIC;

-- Creates or updates an IdP from its metadata: every signing certificate is
-- trusted (new ones added, ones the metadata no longer lists deactivated),
-- SSO and Single Logout endpoints, NameID formats and validUntil are recorded. Expired
-- metadata, or metadata without a signing certificate, is refused.
CREATE OR REPLACE FUNCTION @extschema@.saml_jit_import_idp_metadata(metadata text, sp_entity_id text DEFAULT NULL,
                                                        entity_id text DEFAULT NULL)
RETURNS TABLE (idp_id bigint, idp_entity_id text, created boolean,
               certificates_added integer, certificates_deactivated integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    m record;
    cert text;
    info record;
    fingerprints text[] := '{}';
    the_idp bigint;
    is_new boolean := false;
    added integer := 0;
    deactivated integer := 0;
BEGIN
    SELECT * INTO m FROM @extschema@.saml_jit_parse_idp_metadata(metadata, entity_id);
    IF m.valid_until IS NOT NULL AND m.valid_until < saml_jit.effective_now() THEN
        RAISE EXCEPTION 'the metadata of % expired at %', quote_literal(m.entity_id), m.valid_until
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Fetch the IdP''s current metadata.';
    END IF;
    IF cardinality(m.certificates) = 0 THEN
        RAISE EXCEPTION 'the metadata of % lists no signing certificate', quote_literal(m.entity_id)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT i.id INTO the_idp FROM saml_jit.identity_provider i WHERE i.entity_id = m.entity_id;
    IF the_idp IS NULL THEN
        the_idp := @extschema@.saml_jit_add_idp(m.entity_id, m.certificates[1], sp_entity_id);
        is_new := true;
        added := 1;
    END IF;
    FOREACH cert IN ARRAY m.certificates LOOP
        SELECT * INTO info FROM @extschema@.saml_jit_certificate_info(cert);
        fingerprints := fingerprints || info.fingerprint_sha256;
        UPDATE saml_jit.idp_certificate c SET active = true
         WHERE c.idp_id = the_idp AND c.fingerprint_sha256 = info.fingerprint_sha256;
        IF NOT FOUND THEN
            INSERT INTO saml_jit.idp_certificate (idp_id, certificate) VALUES (the_idp, info.pem);
            added := added + 1;
        END IF;
    END LOOP;
    UPDATE saml_jit.idp_certificate c SET active = false
     WHERE c.idp_id = the_idp AND c.active AND c.fingerprint_sha256 <> ALL (fingerprints);
    GET DIAGNOSTICS deactivated = ROW_COUNT;
    UPDATE saml_jit.identity_provider i
       SET sso_url_redirect = m.sso_url_redirect, sso_url_post = m.sso_url_post,
           slo_url_redirect = m.slo_url_redirect, slo_url_post = m.slo_url_post,
           slo_response_url_redirect = m.slo_response_url_redirect,
           slo_response_url_post = m.slo_response_url_post,
           name_id_formats = m.name_id_formats, metadata_valid_until = m.valid_until,
           sign_authn_requests = m.want_authn_requests_signed,
           metadata_imported_at = now()
     WHERE i.id = the_idp;
    INSERT INTO saml_jit.audit_log (event, idp_id, detail)
    VALUES ('configured', the_idp, jsonb_build_object(
        'via', 'saml_jit_import_idp_metadata', 'created', is_new,
        'certificates_added', added, 'certificates_deactivated', deactivated));
    RETURN QUERY SELECT the_idp, m.entity_id, is_new, added, deactivated;
END
$$;


DO $$
DECLARE
    f record;
    g record;
BEGIN
    FOR f IN SELECT '@extschema@.saml_jit_purge()'::regprocedure AS fn,
                    current_setting('saml_jit_upgrade.purge_acl')::aclitem[] AS acl
             UNION ALL
             SELECT '@extschema@.saml_jit_login(text, text, inet)'::regprocedure,
                    current_setting('saml_jit_upgrade.login_acl')::aclitem[]
             UNION ALL
             SELECT '@extschema@.saml_jit_parse_idp_metadata(text, text)'::regprocedure,
                    current_setting('saml_jit_upgrade.parse_idp_metadata_acl')::aclitem[]
             UNION ALL
             SELECT '@extschema@.saml_jit_set_sp_key(text, text, text, boolean)'::regprocedure,
                    current_setting('saml_jit_upgrade.set_sp_key_acl')::aclitem[]
             UNION ALL
             SELECT '@extschema@.saml_jit_authn_request(text, text, text, boolean, boolean)'::regprocedure,
                    current_setting('saml_jit_upgrade.authn_request_acl')::aclitem[] LOOP
        FOR g IN SELECT a.grantee, a.is_grantable FROM aclexplode(f.acl) a
                  WHERE a.privilege_type = 'EXECUTE'
                    AND a.grantee <> (SELECT proowner FROM pg_catalog.pg_proc WHERE oid = f.fn) LOOP
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s%s', f.fn,
                           CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END,
                           CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
    END LOOP;
END
$$;
