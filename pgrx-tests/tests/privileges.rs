//! The grants model of the README, checked with a real application role on a
//! real connection: it can call the login function and nothing else.

use saml_jit_integration::*;

#[test]
fn application_role_cannot_touch_trust_configuration() {
    let mut admin = fresh_database("it_privileges");
    let cert = std::fs::read_to_string(fixture("demo-idp.crt")).unwrap();
    admin
        .batch_execute(
            "DROP ROLE IF EXISTS it_app_backend;
             CREATE ROLE it_app_backend LOGIN;
             SELECT saml_jit_add_sp('https://app.example/sp', 'https://app.example/acs');",
        )
        .unwrap();
    admin
        .execute(
            "SELECT saml_jit_add_idp('https://idp.example/', $1)",
            &[&cert],
        )
        .unwrap();
    admin
        // The README's role is app_backend; the README test uses that name.
        .batch_execute(
            &include_str!("../../sql/grants-example.sql").replace("app_backend", "it_app_backend"),
        )
        .unwrap();

    let mut app = Client::connect(&dsn_for("it_privileges", "it_app_backend"), NoTls).unwrap();
    let attempts = [
        "INSERT INTO saml_jit.identity_provider (sp_id, entity_id) VALUES (1, 'https://evil/')",
        "UPDATE saml_jit.identity_provider SET allow_sha1 = true",
        "DELETE FROM saml_jit.idp_certificate",
        "SELECT * FROM saml_jit.users",
        "SELECT saml_jit_add_sp('https://evil/sp', 'https://evil/acs')",
        "SELECT saml_jit_add_idp('https://evil/', 'x')",
        "SELECT saml_jit_add_idp_certificate('https://idp.example/', 'x')",
    ];
    for sql in attempts {
        let err = app.batch_execute(sql).expect_err(sql);
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err}");
    }
    // What the role was granted does work: the login runs (and rejects junk).
    let err = app
        .query("SELECT * FROM saml_jit_login('bm90IHhtbA==')", &[])
        .expect_err("junk is rejected");
    assert_eq!(sqlstate(&err), "28000", "{err}");
    // With the library loaded, the settings that weaken checks are superuser-only.
    for sql in [
        "SET saml_jit.now_override = '2000-01-01T00:00:00Z'",
        "SET saml_jit.max_response_bytes = 100000000",
    ] {
        let err = app.batch_execute(sql).expect_err(sql);
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err}");
    }
    let can_login: bool = app
        .query_one(
            "SELECT has_function_privilege('saml_jit_login(text, text, inet)', 'EXECUTE')",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(can_login);
    // The trust rows are intact.
    let n: i64 = admin
        .query_one("SELECT count(*) FROM saml_jit.idp_certificate", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[test]
fn a_placeholder_set_before_the_library_loads_does_not_survive() {
    let mut admin = fresh_database("it_placeholder");
    admin
        .batch_execute(
            "DROP ROLE IF EXISTS placeholder_app; CREATE ROLE placeholder_app LOGIN;
             GRANT EXECUTE ON FUNCTION saml_jit_login(text, text, inet) TO placeholder_app;",
        )
        .unwrap();
    let mut app = Client::connect(&dsn_for("it_placeholder", "placeholder_app"), NoTls).unwrap();
    // Before the library is loaded PostgreSQL accepts this as a placeholder...
    let _ = app.batch_execute("SET saml_jit.now_override = '2000-01-01T00:00:00Z'");
    let _ = app.query("SELECT * FROM saml_jit_login('bm90IHhtbA==')", &[]);
    // ...and drops it when the library defines the superuser-only setting.
    let value: String = app
        .query_one("SHOW saml_jit.now_override", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        value, "",
        "a non-superuser's early SET must not take effect"
    );
}
