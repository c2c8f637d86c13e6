-- Least privilege: nothing is executable by PUBLIC; the owner grants the
-- login function to the application role (see sql/grants-example.sql).
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_login(text, text, inet) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_set_sp_key(text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_authn_request(text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_explain(text, text) FROM PUBLIC;
