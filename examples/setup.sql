-- What the administrator of the example application runs once (psql, as the
-- database owner, who is also the owner of saml_jit). psql variables:
-- sp_entity_id, acs_url, slo_url, the SP key pair sp_key and sp_cert (PEM),
-- and the metadata of the two customers' IdPs,
-- example_metadata and globex_metadata.
CREATE EXTENSION IF NOT EXISTS saml_jit;

-- This application as a SAML service provider.
SELECT saml_jit_add_sp(:'sp_entity_id', :'acs_url') AS sp_id;
-- Its Single Logout endpoint, published in its metadata before the IdPs
-- read it.
UPDATE saml_jit.service_provider SET slo_url = :'slo_url' WHERE entity_id = :'sp_entity_id';
-- Its key pair signs its Single Logout messages.
SELECT saml_jit_set_sp_key(:'sp_entity_id', :'sp_key', :'sp_cert');

-- The application's own data model: organizations (the customers), accounts
-- (people, some invited by an administrator before they ever signed in) and
-- memberships with a role. saml_jit keeps its own users; the on_login hook
-- below is the bridge.
CREATE TABLE public.organizations (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    email_domain  text NOT NULL UNIQUE,   -- routes "work e-mail" to the IdP
    idp_entity_id text NOT NULL UNIQUE,
    suspended     boolean NOT NULL DEFAULT false
);
CREATE TABLE public.accounts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         text NOT NULL UNIQUE CHECK (email = lower(email)),
    display_name  text,
    saml_user_id  uuid UNIQUE,            -- saml_jit.users.id once linked
    invited_at    timestamptz,
    linked_at     timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE public.memberships (
    account_id      bigint NOT NULL REFERENCES public.accounts ON DELETE CASCADE,
    organization_id bigint NOT NULL REFERENCES public.organizations ON DELETE CASCADE,
    role            text NOT NULL CHECK (role IN ('admin', 'developer', 'member')),
    PRIMARY KEY (account_id, organization_id)
);

-- Each IdP is trusted from its metadata and may vouch only for its own
-- customer's e-mail domain. Globex admits only people its IdP puts in the
-- group "staff" (mapped to app:member below).
INSERT INTO public.organizations (name, email_domain, idp_entity_id)
SELECT 'Example Corp', 'example.com', idp_entity_id FROM saml_jit_import_idp_metadata(:'example_metadata');
INSERT INTO public.organizations (name, email_domain, idp_entity_id)
SELECT 'Globex', 'globex.example', idp_entity_id FROM saml_jit_import_idp_metadata(:'globex_metadata');
UPDATE saml_jit.identity_provider i SET email_domains = ARRAY[o.email_domain]
  FROM public.organizations o WHERE o.idp_entity_id = i.entity_id;
UPDATE saml_jit.identity_provider i SET required_groups = '{app:member}'
  FROM public.organizations o WHERE o.idp_entity_id = i.entity_id AND o.name = 'Globex';
SELECT name, email_domain, idp_entity_id FROM public.organizations;

-- IdP group names become the application's role names (for every IdP).
INSERT INTO saml_jit.group_mapping (value, group_name) VALUES ('engineering', 'app:developer'),
                                                              ('staff', 'app:member'),
                                                              ('it-admins', 'app:admin');
UPDATE saml_jit.identity_provider SET unmapped_groups = 'keep';

-- The on_login hook: runs inside saml_jit_login's transaction, after the
-- saml_jit user row is written. Raising refuses the login
-- (provisioning_refused, this message shown to the user) and leaves nothing
-- behind. It runs as the extension owner with saml_jit_login's search_path
-- (pg_catalog, pg_temp), so it names its own.
CREATE FUNCTION public.on_saml_login(event jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    org         organizations;
    account     bigint;
    login_email text := lower(event ->> 'email');
    groups      jsonb := event -> 'groups';
BEGIN
    SELECT * INTO org FROM organizations WHERE idp_entity_id = event ->> 'idp_entity_id';
    IF org.id IS NULL THEN
        RAISE EXCEPTION 'No organization signs in with this identity provider.';
    END IF;
    IF org.suspended THEN
        RAISE EXCEPTION '% is suspended. Ask your administrator to contact billing.', org.name;
    END IF;
    SELECT id INTO account FROM accounts WHERE saml_user_id = (event ->> 'user_id')::uuid;
    -- First SSO login: link an invited account, but only by an e-mail the IdP
    -- is entitled to vouch for (email_verified); never take over one otherwise.
    IF account IS NULL AND (event ->> 'email_verified')::boolean THEN
        UPDATE accounts SET saml_user_id = (event ->> 'user_id')::uuid, linked_at = now()
         WHERE email = login_email AND saml_user_id IS NULL
        RETURNING id INTO account;
    END IF;
    IF account IS NULL THEN
        IF EXISTS (SELECT FROM accounts WHERE email = login_email) THEN
            RAISE EXCEPTION 'An account for % exists already and cannot be linked to this sign-in.', login_email;
        END IF;
        INSERT INTO accounts (email, saml_user_id, linked_at)
        VALUES (coalesce(login_email, event ->> 'user_id'), (event ->> 'user_id')::uuid, now())
        ON CONFLICT (saml_user_id) DO UPDATE SET linked_at = accounts.linked_at
        RETURNING id INTO account;
    END IF;
    UPDATE accounts SET display_name = event ->> 'display_name' WHERE id = account;
    INSERT INTO memberships (account_id, organization_id, role)
    VALUES (account, org.id, CASE WHEN groups ? 'app:admin' THEN 'admin'
                                  WHEN groups ? 'app:developer' THEN 'developer'
                                  ELSE 'member' END)
    ON CONFLICT (account_id, organization_id) DO UPDATE SET role = EXCLUDED.role;
END
$$;
UPDATE saml_jit.service_provider SET on_login = 'public.on_saml_login(jsonb)';

-- An administrator's invitation, before Ada ever signed in: her first SSO
-- login links this account instead of creating a second one.
INSERT INTO public.accounts (email, display_name, invited_at)
VALUES ('ada@example.com', 'Ada (invited)', now());

-- The application's own role: it may log users in, check and end sessions
-- (Single Logout too),
-- and read what it shows; nothing else (no IdP, certificate or mapping
-- changes, no writes to its own tables except through the hook).
DO $$ BEGIN
    CREATE ROLE example_app LOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
GRANT EXECUTE ON FUNCTION saml_jit_login(text, text, inet),
                          saml_jit_authn_request(text, text, text, boolean, boolean),
                          saml_jit_session_active(uuid),
                          saml_jit_end_session(uuid),
                          saml_jit_logout(text, text),
                          saml_jit_logout_request(uuid, text),
                          saml_jit_sp_metadata(text),
                          saml_jit_sp_metadata_text(text) TO example_app;
GRANT USAGE ON SCHEMA saml_jit TO example_app;
GRANT SELECT ON saml_jit.users, saml_jit.audit_log TO example_app;
GRANT SELECT ON public.organizations, public.accounts, public.memberships TO example_app;
