-- What the administrator of the example application runs once (psql, as the
-- database owner). psql variables: sp_entity_id, acs_url, and the metadata
-- of the two customers' IdPs, example_metadata and globex_metadata.
CREATE EXTENSION IF NOT EXISTS saml_jit;

-- This application as a SAML service provider.
SELECT saml_jit_add_sp(:'sp_entity_id', :'acs_url') AS sp_id;

-- The application's own table: which customer's IdP signs in which e-mail
-- domain. Each IdP is trusted from its metadata (entity ID, signing
-- certificate, SSO URL).
CREATE TABLE public.sso_tenant (
    email_domain  text PRIMARY KEY,
    idp_entity_id text NOT NULL
);
INSERT INTO public.sso_tenant
SELECT 'example.com', idp_entity_id FROM saml_jit_import_idp_metadata(:'example_metadata');
INSERT INTO public.sso_tenant
SELECT 'globex.example', idp_entity_id FROM saml_jit_import_idp_metadata(:'globex_metadata');
SELECT * FROM public.sso_tenant;

-- IdP group names become the application's role names (for every IdP).
INSERT INTO saml_jit.group_mapping (value, group_name) VALUES ('engineering', 'app:developer'),
                                                              ('staff', 'app:member');
UPDATE saml_jit.identity_provider SET unmapped_groups = 'keep';

-- The application's own role: it may log users in and read what it shows on
-- the profile page, nothing else (no IdP, certificate or mapping changes).
DO $$ BEGIN
    CREATE ROLE example_app LOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
GRANT EXECUTE ON FUNCTION saml_jit_login(text, text, inet),
                          saml_jit_authn_request(text, text),
                          saml_jit_sp_metadata(text),
                          saml_jit_sp_metadata_text(text) TO example_app;
GRANT USAGE ON SCHEMA saml_jit TO example_app;
GRANT SELECT ON saml_jit.users, saml_jit.audit_log TO example_app;
GRANT SELECT ON public.sso_tenant TO example_app;
