-- Fitting the application's own data model: the on_login hook, the e-mail
-- domains an IdP may vouch for, the groups that entitle a user, and the
-- session a login opens. (The login itself: src/login/.)

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
