#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::pg_tests::assert_fails;

    #[pg_test]
    fn without_preloading_a_rejection_still_raises_28000() {
        let preloaded =
            Spi::get_one::<bool>("SELECT preloaded FROM saml_jit_audit_queue()").unwrap();
        assert_eq!(
            preloaded,
            Some(false),
            "the pg_test cluster does not preload saml_jit"
        );
        assert_fails(
            "SELECT * FROM saml_jit_login('bm90IHhtbA==')",
            "28000",
            "SAML response rejected: malformed",
        );
        assert_fails("SELECT * FROM saml_jit_login('')", "28000", "malformed");
    }

    #[pg_test]
    fn an_unknown_issuer_is_named_in_the_detail() {
        // A well-formed Response from an IdP nobody trusts.
        let xml = r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r" Version="2.0"><saml:Issuer>https://stranger.example/</saml:Issuer></samlp:Response>"#;
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, xml);
        assert_fails(
            &format!("SELECT * FROM saml_jit_login('{b64}')"),
            "28000",
            "unknown_issuer",
        );
    }
}
