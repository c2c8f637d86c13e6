//! Rejections stay auditable although the caller's transaction aborts: the
//! preloaded audit writer copies them into saml_jit.audit_log (the test
//! cluster runs with shared_preload_libraries = 'saml_jit' and
//! saml_jit.audit_database = 'it_audit').

use std::time::{Duration, Instant};

use saml_jit_integration::*;

fn count(c: &mut Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn a_thousand_rejections_leave_a_thousand_rows() {
    let mut c = fresh_database("it_audit");
    trust_demo_idp(&mut c);
    let genuine = to_xml(&mint_one(spec("victim")));
    let forged = to_response(&genuine.replace("victim@example.com", "attacker@example.com"));
    // A forged response from a known IdP: the row names the IdP and claimed IDs.
    c.batch_execute("BEGIN").unwrap();
    let err = c
        .query_one(
            "SELECT 1 FROM saml_jit_login($1, client_addr => '192.0.2.7')",
            &[&forged],
        )
        .expect_err("a forged response is refused");
    assert_eq!(sqlstate(&err), "28000");
    let message = err
        .as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_default();
    assert_eq!(message, "SAML response rejected: signature_invalid");
    c.batch_execute("ROLLBACK").unwrap();
    for i in 0..999 {
        let junk = if i % 2 == 0 {
            format!("not base64 {i}")
        } else {
            to_response(&format!("<r{i}/>"))
        };
        let _ = login(&mut c, &junk, None).expect_err("junk is refused");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let sql = "SELECT count(*) FROM saml_jit.audit_log WHERE event = 'rejected'";
    while count(&mut c, sql) < 1000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        count(&mut c, sql),
        1000,
        "every rejection must be in the audit log"
    );
    let row = c
        .query_one(
            "SELECT a.reason, a.idp_id = i.id, a.subject, a.client_addr::text, a.detail->>'detail'
               FROM saml_jit.audit_log a, saml_jit.identity_provider i
              WHERE a.event = 'rejected' AND a.reason = 'signature_invalid'",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "signature_invalid");
    assert!(row.get::<_, bool>(1), "the row names the IdP");
    assert_eq!(
        row.get::<_, Option<String>>(2),
        None,
        "nothing unverified is stored as the subject"
    );
    assert_eq!(row.get::<_, String>(3), "192.0.2.7/32");
    assert!(row.get::<_, String>(4).contains("does not verify"));
    assert_eq!(count(&mut c, "SELECT count(*) FROM saml_jit.audit_log WHERE event = 'rejected' AND reason = 'malformed'"), 999);
    let dropped = count(
        &mut c,
        "SELECT dropped_queue_full FROM saml_jit_audit_queue()",
    );
    assert_eq!(dropped, 0);
    // Nothing else was written by the rejected logins.
    assert_eq!(count(&mut c, "SELECT count(*) FROM saml_jit.users"), 0);
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM saml_jit.consumed_assertion"),
        0
    );
}
