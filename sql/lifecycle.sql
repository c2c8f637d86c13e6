-- Lifecycle: expiry-based and list-based deprovisioning, and retention.
-- Writers are SECURITY DEFINER with a pinned search_path, not executable by PUBLIC.

-- The instant lifecycle checks use: saml_jit.now_override when a superuser's
-- session set it (tests), else the clock; read by the library (src/gucs.rs),
-- never with current_setting, which would also see a placeholder value that
-- any role may set before the library is loaded.
CREATE FUNCTION saml_jit.effective_now() RETURNS timestamptz
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT @extschema@.saml_jit_effective_now()
$$;

-- Deletes what can no longer matter: replay rows of assertions that can no
-- longer be valid, sessions that ended (or ran out) longer ago than
-- saml_jit.session_retention, and audit rows older than
-- saml_jit.audit_retention (an interval; empty = keep forever).
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

-- The scheduled function: expires every active user whose expires_at has
-- passed (one audit row each) and ends their sessions, then purges. Works in batches over the partial
-- index users_active_expiry_idx; rows that a login holds at that moment are
-- skipped (SKIP LOCKED) rather than waited for: that login sets a new expiry.
-- All of it happens in the caller's transaction, so the expired rows stay
-- locked until it commits; max_batches bounds one call (see the procedure
-- below for very large runs).
CREATE FUNCTION @extschema@.saml_jit_deprovision_expired(batch_size integer DEFAULT 1000,
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

-- For very large runs (100,000 users due at once): one batch per
-- transaction, committed before the next, so a login waits at most for one
-- batch. A procedure (CALL it, e.g. from pg_cron); it writes only through the
-- SECURITY DEFINER function above, and as a procedure with COMMIT it cannot
-- itself be SECURITY DEFINER.
CREATE PROCEDURE @extschema@.saml_jit_deprovision_expired_committing(batch_size integer DEFAULT 1000)
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    LOOP
        n := @extschema@.saml_jit_deprovision_expired(batch_size, 1);
        COMMIT;
        EXIT WHEN n < batch_size;
    END LOOP;
END
$$;

-- List-based deprovisioning: the IdP (or HR) sends the subjects to disable.
-- Disabled users are refused at login and JIT never recreates or re-enables
-- them; disabling ends their sessions (enabling does not revive them). Every subject is reported back, none silently ignored:
--   disable: disabled, already_disabled or unknown
--   enable:  enabled (active again, or expired if its expiry has passed),
--            not_disabled or unknown
CREATE FUNCTION saml_jit.set_users_disabled(idp_entity_id text, subjects text[], disable boolean)
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
REVOKE EXECUTE ON FUNCTION saml_jit.set_users_disabled(text, text[], boolean) FROM PUBLIC;

CREATE FUNCTION @extschema@.saml_jit_disable_users(idp_entity_id text, subjects text[])
RETURNS TABLE (subject text, outcome text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM saml_jit.set_users_disabled(idp_entity_id, subjects, true)
$$;

CREATE FUNCTION @extschema@.saml_jit_enable_users(idp_entity_id text, subjects text[])
RETURNS TABLE (subject text, outcome text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM saml_jit.set_users_disabled(idp_entity_id, subjects, false)
$$;

REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_purge() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_purge_audit_step(bigint, bigint, integer) FROM PUBLIC;
REVOKE EXECUTE ON PROCEDURE @extschema@.saml_jit_purge_committing(integer, interval) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_deprovision_expired(integer, integer) FROM PUBLIC;
REVOKE EXECUTE ON PROCEDURE @extschema@.saml_jit_deprovision_expired_committing(integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_disable_users(text, text[]) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_enable_users(text, text[]) FROM PUBLIC;
