-- Least privilege: nothing is executable by PUBLIC; the owner grants the
-- login function to the application role (see sql/grants-example.sql).
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_login(text, text, inet) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_set_sp_key(text, text, text, boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_authn_request(text, text, text, boolean, boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_explain(text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_logout(text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_logout_request(uuid, text) FROM PUBLIC;
-- Helpers without side effects are owner-only too, so that the rule is simple:
-- no saml_jit_* function is executable by PUBLIC.
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_certificate_info(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_parse_idp_metadata(text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_sp_metadata_text(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_sp_metadata(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_audit_queue() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_version() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_effective_now() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.saml_jit_email_domain(text) FROM PUBLIC;
