//! Metadata refresh: an IdP's metadata fetched again from its metadata_url
//! and imported with the usual rollover rules; what fails is recorded on the
//! IdP row and changes nothing else. `saml_jit_refresh_idp_metadata` is the
//! database side that the saml-jit-refresh-metadata command calls.

use serde_json::json;

use saml_jit_integration::*;

const KEYCLOAK: &str = "https://keycloak.example/realms/acme";

fn body(fixture_name: &str) -> String {
    read_fixture(fixture_name)
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect()
}

/// Keycloak's metadata shape with a cacheDuration, signing with `cert`.
fn keycloak_metadata(cert: &str) -> String {
    read_fixture("metadata/keycloak.xml")
        .replacen(
            "entityID=\"https://keycloak.example/realms/acme\"",
            "entityID=\"https://keycloak.example/realms/acme\" cacheDuration=\"PT6H\"",
            1,
        )
        .replace(&body("demo-idp.crt"), &body(cert))
}

fn active_certificates(c: &mut Client) -> Vec<String> {
    c.query(
        "SELECT fingerprint_sha256 FROM saml_jit.idp_certificate WHERE active ORDER BY id",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn keycloak_login(c: &mut Client, user: &str, key: &str) -> Result<Login, Refusal> {
    let mut s = spec(user);
    s["idp"] = json!(KEYCLOAK);
    s["key"] = json!(fixture(&format!("{key}.key")));
    s["cert"] = json!(fixture(&format!("{key}.crt")));
    login(c, &mint_one(s), None)
}

#[test]
fn a_refresh_rolls_the_signing_certificate_and_a_failure_changes_nothing() {
    let mut c = fresh_database("it_refresh_sql");
    c.execute("SELECT saml_jit_add_sp($1, $2)", &[&SP, &ACS])
        .unwrap();
    c.query(
        "SELECT * FROM saml_jit_import_idp_metadata($1)",
        &[&keycloak_metadata("demo-idp.crt")],
    )
    .unwrap();
    keycloak_login(&mut c, "before", "demo-idp").expect("signed by the current key");
    assert_rejected(
        keycloak_login(&mut c, "early", "other-idp"),
        "signature_invalid",
    );

    // The IdP rolled its key: the refreshed metadata lists the new one only.
    let row = c
        .query_one(
            "SELECT refreshed, certificates_added, certificates_deactivated,
                    next_refresh BETWEEN now() + interval '5 hours 59 minutes' AND now() + interval '6 hours 1 minute',
                    error
               FROM saml_jit_refresh_idp_metadata($1, $2)",
            &[&KEYCLOAK, &keycloak_metadata("other-idp.crt")],
        )
        .unwrap();
    assert_eq!(
        (
            row.get::<_, bool>(0),
            row.get::<_, i32>(1),
            row.get::<_, i32>(2),
            row.get::<_, bool>(3),
            row.get::<_, Option<String>>(4)
        ),
        (true, 1, 1, true, None),
        "cacheDuration PT6H sets the next refresh"
    );
    keycloak_login(&mut c, "after", "other-idp").expect("signed by the new key");
    assert_rejected(
        keycloak_login(&mut c, "stale", "demo-idp"),
        "signature_invalid",
    );
    let trusted = active_certificates(&mut c);

    // Garbage, another entity, expired metadata, a fetch that failed: each is
    // recorded, none changes the certificates.
    let expired = keycloak_metadata("demo-idp.crt").replacen(
        "cacheDuration=\"PT6H\"",
        "validUntil=\"2001-01-01T00:00:00Z\"",
        1,
    );
    let other_entity =
        keycloak_metadata("demo-idp.crt").replace(KEYCLOAK, "https://evil.example/idp");
    for (metadata, fetch_error, says) in [
        (
            Some("<html>502 Bad Gateway</html>"),
            None,
            "invalid IdP metadata",
        ),
        (Some(other_entity.as_str()), None, "no IdP with entityID"),
        (Some(expired.as_str()), None, "expired"),
        (None, Some("timed out after 10 s"), "timed out after 10 s"),
    ] {
        let row = c
            .query_one(
                "SELECT refreshed, error FROM saml_jit_refresh_idp_metadata($1, $2, $3)",
                &[&KEYCLOAK, &metadata, &fetch_error],
            )
            .unwrap();
        assert!(!row.get::<_, bool>(0), "{says}");
        let error: String = row.get(1);
        assert!(error.contains(says), "{says}: {error}");
        let recorded: Option<String> = c
            .query_one(
                "SELECT metadata_refresh_error FROM saml_jit.identity_provider WHERE entity_id = $1",
                &[&KEYCLOAK],
            )
            .unwrap()
            .get(0);
        assert_eq!(recorded.as_deref(), Some(error.as_str()));
        assert_eq!(active_certificates(&mut c), trusted, "{says}");
    }
    keycloak_login(&mut c, "still", "other-idp").expect("the certificates stayed");
    // A success clears the recorded error.
    c.query(
        "SELECT * FROM saml_jit_refresh_idp_metadata($1, $2)",
        &[&KEYCLOAK, &keycloak_metadata("other-idp.crt")],
    )
    .unwrap();
    let recorded: Option<String> = c
        .query_one(
            "SELECT metadata_refresh_error FROM saml_jit.identity_provider WHERE entity_id = $1",
            &[&KEYCLOAK],
        )
        .unwrap()
        .get(0);
    assert_eq!(recorded, None);
    let err = c
        .execute(
            "UPDATE saml_jit.identity_provider SET metadata_url = 'file:///etc/passwd'",
            &[],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23514", "only http(s) URLs");
}
