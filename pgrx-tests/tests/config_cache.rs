//! Each backend caches the trust and mapping configuration (src/provision/
//! config.rs). These tests keep one application connection open, so every
//! login runs in the same backend with a warm cache, and change the
//! configuration from another connection: the very next login must obey the
//! change. A revoked certificate that stayed trusted in a cache would be a
//! hole, so that is the first thing checked.

use saml_jit_integration::*;

fn setup(name: &str) -> (Client, Client) {
    let mut admin = fresh_database(name);
    trust_demo_idp(&mut admin);
    let app = Client::connect(&dsn_for(name, "postgres"), NoTls).unwrap();
    (admin, app)
}

fn display_name(c: &mut Client, subject: &str) -> Option<String> {
    c.query_one(
        "SELECT display_name FROM saml_jit.users WHERE subject = $1",
        &[&subject],
    )
    .unwrap()
    .get(0)
}

#[test]
fn a_deactivated_certificate_is_refused_by_a_warm_backend() {
    let (mut admin, mut app) = setup("it_cache_cert");
    let responses = mint(&[spec("c1"), spec("c2"), spec("c3")]);
    login(&mut app, &responses[0], None).expect("warms the cache");
    admin
        .batch_execute("UPDATE saml_jit.idp_certificate SET active = false")
        .unwrap();
    assert_rejected(login(&mut app, &responses[1], None), "signature_invalid");
    admin
        .batch_execute("UPDATE saml_jit.idp_certificate SET active = true")
        .unwrap();
    login(&mut app, &responses[2], None).expect("the certificate is trusted again");
}

#[test]
fn policy_and_mapping_changes_apply_to_the_next_login() {
    let (mut admin, mut app) = setup("it_cache_policy");
    let responses = mint(&[spec("p1"), spec("p2"), spec("p3"), spec("p4")]);
    login(&mut app, &responses[0], None).unwrap();

    admin
        .batch_execute("UPDATE saml_jit.identity_provider SET enabled = false")
        .unwrap();
    assert_rejected(login(&mut app, &responses[1], None), "idp_disabled");
    admin
        .batch_execute(
            "UPDATE saml_jit.identity_provider SET enabled = true;
             INSERT INTO saml_jit.attribute_mapping (attribute, target) VALUES ('title', 'display_name');
             INSERT INTO saml_jit.group_mapping (value, group_name) VALUES ('x', 'y');",
        )
        .unwrap();
    let l = login(&mut app, &responses[2], None).unwrap();
    assert_eq!(
        display_name(&mut app, &l.subject).as_deref(),
        Some("Analyst"),
        "the new rule maps title"
    );

    admin
        .batch_execute("DELETE FROM saml_jit.attribute_mapping")
        .unwrap();
    let l = login(&mut app, &responses[3], None).unwrap();
    assert_ne!(
        display_name(&mut app, &l.subject).as_deref(),
        Some("Analyst"),
        "the rule is gone again"
    );
}

#[test]
fn a_rolled_back_change_does_not_linger_in_the_cache() {
    let (mut admin, mut app) = setup("it_cache_rollback");
    let responses = mint(&[spec("r1"), spec("r2"), spec("r3")]);
    login(&mut app, &responses[0], None).unwrap();

    // The application's own transaction disables the IdP, sees the refusal
    // (the cache loaded the uncommitted row), and rolls back.
    app.batch_execute("BEGIN; UPDATE saml_jit.identity_provider SET enabled = false")
        .unwrap();
    assert_rejected(login(&mut app, &responses[1], None), "idp_disabled");
    app.batch_execute("ROLLBACK").unwrap();
    login(&mut app, &responses[1], None).expect("the IdP was never disabled");

    // Another session then commits an unrelated change; the cache must still
    // reflect the committed state (enabled), not the rolled-back one.
    admin
        .batch_execute("UPDATE saml_jit.identity_provider SET clock_skew = '2 minutes'")
        .unwrap();
    login(&mut app, &responses[2], None).expect("enabled, with the new skew");
}

#[test]
fn an_expired_certificate_is_refused_only_when_the_idp_says_so() {
    let (mut admin, mut app) = setup("it_cache_expired_cert");
    let responses = mint(&[spec("e1"), spec("e2"), spec("e3"), spec("e4")]);
    login(&mut app, &responses[0], None).unwrap();
    // As if the certificate had expired yesterday (not_after is only derived
    // from the certificate when the certificate itself is written).
    admin
        .batch_execute("UPDATE saml_jit.idp_certificate SET not_after = now() - interval '1 day'")
        .unwrap();
    login(&mut app, &responses[1], None).expect("validity is informative by default");
    admin
        .batch_execute("UPDATE saml_jit.identity_provider SET reject_expired_certificates = true")
        .unwrap();
    let detail = assert_rejected(login(&mut app, &responses[2], None), "signature_invalid");
    assert!(detail.contains("expired"), "{detail}");
    admin
        .batch_execute("UPDATE saml_jit.idp_certificate SET not_after = now() + interval '1 year'")
        .unwrap();
    login(&mut app, &responses[3], None).expect("valid again");
}

#[test]
fn without_a_version_row_nothing_is_cached() {
    let (mut admin, mut app) = setup("it_cache_no_version");
    let responses = mint(&[spec("n1"), spec("n2"), spec("n3")]);
    admin
        .batch_execute("DELETE FROM saml_jit.config_version")
        .unwrap();
    login(&mut app, &responses[0], None).expect("logins still work");
    // No trigger can announce this change any more (its UPDATE finds no row);
    // the next login must see it all the same.
    admin
        .batch_execute("UPDATE saml_jit.identity_provider SET enabled = false")
        .unwrap();
    assert_rejected(login(&mut app, &responses[1], None), "idp_disabled");
    admin
        .batch_execute("UPDATE saml_jit.identity_provider SET enabled = true")
        .unwrap();
    login(&mut app, &responses[2], None).unwrap();
}
