-- The grants an application role needs: EXECUTE on the login function (and,
-- for SP-initiated login, on the AuthnRequest function), nothing else.
-- (Run as the extension's owner; the role app_backend must exist.)
GRANT EXECUTE ON FUNCTION saml_jit_login(text, text, inet) TO app_backend;
GRANT EXECUTE ON FUNCTION saml_jit_authn_request(text, text, text, boolean, boolean) TO app_backend;
-- Sessions: whether a login's session still holds, and the application's sign-out.
GRANT EXECUTE ON FUNCTION saml_jit_session_active(uuid), saml_jit_end_session(uuid) TO app_backend;
-- Single Logout: the SLO endpoint's messages, and starting a logout at the IdP.
GRANT EXECUTE ON FUNCTION saml_jit_logout(text, text), saml_jit_logout_request(uuid, text) TO app_backend;

-- Optional, for an auditors' role: read the audit trail and the users.
-- GRANT USAGE ON SCHEMA saml_jit TO auditor;
-- GRANT SELECT ON saml_jit.audit_log, saml_jit.users TO auditor;
