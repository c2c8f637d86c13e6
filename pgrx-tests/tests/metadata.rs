//! Metadata in and out: IdP metadata of the shapes Entra ID, ADFS, Okta,
//! Google, Keycloak, Shibboleth and SimpleSAMLphp publish (written for these
//! tests with our test certificates), certificate rollover through re-import,
//! and the SP's metadata validated against the OASIS schema.

use std::io::Write;

use saml_jit_integration::*;

fn metadata(name: &str) -> String {
    read_fixture(&format!("metadata/{name}"))
}

/// A metadata file, the entity to pick, the expected entity ID, its signing
/// certificates' fingerprints, and its HTTP-Redirect SSO URL.
type Shape<'a> = (&'a str, Option<&'a str>, &'a str, Vec<&'a String>, &'a str);

fn fingerprint(c: &mut Client, cert: &str) -> String {
    c.query_one(
        "SELECT fingerprint_sha256 FROM saml_jit_certificate_info($1)",
        &[&cert],
    )
    .unwrap()
    .get(0)
}

#[test]
fn imports_the_metadata_shapes_of_real_idps() {
    let mut c = fresh_database("it_meta_import");
    c.execute("SELECT saml_jit_add_sp($1, $2)", &[&SP, &ACS])
        .unwrap();
    let demo = fingerprint(&mut c, &read_fixture("demo-idp.crt"));
    let other = fingerprint(&mut c, &read_fixture("other-idp.crt"));
    let cases: [Shape; 7] = [
        (
            "entra-id.xml",
            None,
            "https://sts.windows.net/00000000-1111-2222-3333-444444444444/",
            vec![&demo, &other],
            "https://login.microsoftonline.com/00000000-1111-2222-3333-444444444444/saml2",
        ),
        (
            "adfs.xml",
            None,
            "http://adfs.corp.example/adfs/services/trust",
            vec![&demo],
            "https://adfs.corp.example/adfs/ls/",
        ),
        (
            "okta.xml",
            None,
            "http://www.okta.com/exk1abcdEFGH2345",
            vec![&demo],
            "https://example.okta.com/app/example_app_1/exk1abcdEFGH2345/sso/saml",
        ),
        (
            "google.xml",
            None,
            "https://accounts.google.com/o/saml2?idpid=C01abcdef",
            vec![&demo],
            "https://accounts.google.com/o/saml2/idp?idpid=C01abcdef",
        ),
        (
            "keycloak.xml",
            None,
            "https://keycloak.example/realms/acme",
            vec![&demo],
            "https://keycloak.example/realms/acme/protocol/saml",
        ),
        (
            "shibboleth.xml",
            Some("https://idp.university.example/idp/shibboleth"),
            "https://idp.university.example/idp/shibboleth",
            vec![&demo, &other],
            "https://idp.university.example/idp/profile/SAML2/Redirect/SSO",
        ),
        (
            "simplesamlphp.xml",
            None,
            "https://ssp.example/simplesaml/saml2/idp/metadata.php",
            vec![&demo],
            "https://ssp.example/simplesaml/saml2/idp/SSOService.php",
        ),
    ];
    for (file, pick, entity, certs, sso) in cases {
        let row = c
            .query_one(
                "SELECT idp_entity_id, created, certificates_added FROM saml_jit_import_idp_metadata($1, entity_id => $2)",
                &[&metadata(file), &pick],
            )
            .unwrap_or_else(|e| panic!("{file}: {e:?}"));
        assert_eq!(row.get::<_, String>(0), entity, "{file}");
        assert!(row.get::<_, bool>(1), "{file}");
        assert_eq!(row.get::<_, i32>(2) as usize, certs.len(), "{file}");
        let stored: Vec<String> = c
            .query(
                "SELECT c.fingerprint_sha256 FROM saml_jit.idp_certificate c
                   JOIN saml_jit.identity_provider i ON i.id = c.idp_id
                  WHERE i.entity_id = $1 AND c.active ORDER BY c.id",
                &[&entity],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(
            stored.iter().collect::<Vec<_>>(),
            certs,
            "{file}: only signing certificates"
        );
        let redirect: Option<String> = c
            .query_one(
                "SELECT sso_url_redirect FROM saml_jit.identity_provider WHERE entity_id = $1",
                &[&entity],
            )
            .unwrap()
            .get(0);
        assert_eq!(redirect.as_deref(), Some(sso), "{file}");
    }
    // An aggregate with several IdPs needs a choice, and says which exist.
    let err = c
        .query(
            "SELECT * FROM saml_jit_import_idp_metadata($1)",
            &[&metadata("shibboleth.xml")],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "22023");
    let msg = err.as_db_error().unwrap().message().to_string();
    assert!(
        msg.contains("https://idp.college.example/idp/shibboleth"),
        "{msg}"
    );
    // An SP's metadata is not an IdP's.
    let sp_only = metadata("adfs.xml").replace("IDPSSODescriptor", "AttributeAuthorityDescriptor");
    let err = c
        .query(
            "SELECT * FROM saml_jit_import_idp_metadata($1)",
            &[&sp_only],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "22023");
}

#[test]
fn reimport_rolls_certificates_and_refuses_expired_metadata() {
    let mut c = fresh_database("it_meta_rollover");
    c.execute("SELECT saml_jit_add_sp($1, $2)", &[&SP, &ACS])
        .unwrap();
    let okta = metadata("okta.xml");
    let demo_b64: String = read_fixture("demo-idp.crt")
        .lines()
        .filter(|l| !l.starts_with("---"))
        .collect();
    let other_b64: String = read_fixture("other-idp.crt")
        .lines()
        .filter(|l| !l.starts_with("---"))
        .collect();
    c.query("SELECT * FROM saml_jit_import_idp_metadata($1)", &[&okta])
        .unwrap();
    // The IdP rolled its key: the new metadata lists only the new certificate.
    let rolled = okta.replace(&demo_b64, &other_b64);
    let row = c
        .query_one("SELECT created, certificates_added, certificates_deactivated FROM saml_jit_import_idp_metadata($1)", &[&rolled])
        .unwrap();
    assert_eq!(
        (
            row.get::<_, bool>(0),
            row.get::<_, i32>(1),
            row.get::<_, i32>(2)
        ),
        (false, 1, 1)
    );
    let row = c
        .query_one("SELECT certificates_added, certificates_deactivated FROM saml_jit_import_idp_metadata($1)", &[&okta])
        .unwrap();
    assert_eq!(
        (row.get::<_, i32>(0), row.get::<_, i32>(1)),
        (0, 1),
        "the old certificate is reactivated, not duplicated"
    );
    let active: i64 = c
        .query_one(
            "SELECT count(*) FROM saml_jit.idp_certificate WHERE active",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(active, 1);
    let expired =
        metadata("google.xml").replace("2099-11-01T12:00:00.000Z", "2001-01-01T00:00:00Z");
    let err = c
        .query(
            "SELECT * FROM saml_jit_import_idp_metadata($1)",
            &[&expired],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "22023");
    assert!(err.as_db_error().unwrap().message().contains("expired"));
}

#[test]
fn a_login_works_with_an_idp_trusted_through_its_metadata() {
    let mut c = fresh_database("it_meta_login");
    c.execute("SELECT saml_jit_add_sp($1, $2)", &[&SP, &ACS])
        .unwrap();
    c.query(
        "SELECT * FROM saml_jit_import_idp_metadata($1)",
        &[&metadata("keycloak.xml")],
    )
    .unwrap();
    let mut s = spec("kc-user");
    s["idp"] = serde_json::json!("https://keycloak.example/realms/acme");
    let l = login(&mut c, &mint_one(s), None).expect("login");
    assert_eq!(l.action, "created");
}

#[test]
fn sp_metadata_is_valid_against_the_saml_schema() {
    let mut c = fresh_database("it_meta_sp");
    c.execute(
        "SELECT saml_jit_add_sp($1, $2)",
        &[&SP, &"https://app.test.example/acs?a=1&b=2"],
    )
    .unwrap();
    install_sp_key(&mut c);
    c.execute(
        "UPDATE saml_jit.service_provider SET slo_url = 'https://app.test.example/slo?a=1&b=2'",
        &[],
    )
    .unwrap();
    let xml: String = c
        .query_one("SELECT saml_jit_sp_metadata()::text", &[])
        .unwrap()
        .get(0);
    assert!(
        xml.contains("entityID=\"https://app.test.example/sp\""),
        "{xml}"
    );
    assert!(
        xml.contains("Location=\"https://app.test.example/acs?a=1&amp;b=2\""),
        "{xml}"
    );
    assert!(
        xml.contains("use=\"encryption\""),
        "the SP certificate is advertised: {xml}"
    );
    for binding in ["HTTP-Redirect", "HTTP-POST"] {
        assert!(
            xml.contains(&format!(
                "<md:SingleLogoutService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:{binding}\" \
                 Location=\"https://app.test.example/slo?a=1&amp;b=2\"/>"
            )),
            "{xml}"
        );
    }
    assert!(!xml.contains("PRIVATE"), "never the key");
    let venv = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("idp/validate_metadata.py");
    let mut child = std::process::Command::new(venv)
        .arg(script)
        .env("PYTHONWARNINGS", "ignore")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(xml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
