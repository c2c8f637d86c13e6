//! Lifecycle: expiry set at login, saml_jit_deprovision_expired (also run by a
//! real pg_cron job), reactivation, list-based disabling, retention.

use std::time::{Duration, Instant};

use serde_json::json;

use saml_jit_integration::*;

fn one<T: for<'a> postgres::types::FromSql<'a>>(c: &mut Client, sql: &str) -> T {
    c.query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

fn with_expiry(user: &str, value: &str) -> serde_json::Value {
    let mut s = spec(user);
    s["attributes"]["accountExpires"] = json!([value]);
    s
}

#[test]
fn expiry_from_attribute_or_ttl_then_deprovision_and_reactivate() {
    let mut c = fresh_database("it_life_expiry");
    trust_demo_idp(&mut c);
    c.batch_execute(
        "UPDATE saml_jit.identity_provider SET expiry_attribute = 'accountExpires', account_ttl = '30 days'",
    )
    .unwrap();
    let logins = mint(&[
        with_expiry("dated", "2020-01-01T00:00:00Z"),
        with_expiry("days", "7"),
        with_expiry("garbled", "next tuesday"),
        spec("absent"),
    ]);
    for r in &logins {
        login(&mut c, r, None).unwrap();
    }
    let expiry = |c: &mut Client, who: &str| -> String {
        one(c, &format!("SELECT coalesce(to_char(expires_at - now(), 'DD'), to_char(expires_at, 'YYYY-MM-DD')) FROM saml_jit.users WHERE subject = '{who}'"))
    };
    assert_eq!(
        one::<String>(
            &mut c,
            "SELECT expires_at::date::text FROM saml_jit.users WHERE subject = 'dated'"
        ),
        "2020-01-01"
    );
    assert_eq!(expiry(&mut c, "days"), "06", "seven days from the login");
    assert_eq!(
        expiry(&mut c, "garbled"),
        "29",
        "unparsable: the account_ttl fallback"
    );
    assert_eq!(expiry(&mut c, "absent"), "29");

    // Only the user whose expiry has passed is deprovisioned, once.
    assert_eq!(
        one::<i32>(&mut c, "SELECT saml_jit_deprovision_expired()"),
        1
    );
    assert_eq!(
        one::<i32>(&mut c, "SELECT saml_jit_deprovision_expired()"),
        0,
        "idempotent"
    );
    assert_eq!(
        one::<String>(
            &mut c,
            "SELECT status FROM saml_jit.users WHERE subject = 'dated'"
        ),
        "expired"
    );
    assert_eq!(
        one::<i64>(
            &mut c,
            "SELECT count(*) FROM saml_jit.audit_log WHERE event = 'deprovisioned'"
        ),
        1
    );

    // A valid login reactivates the expired user with a new expiry, audited.
    let again = mint_one(with_expiry("dated", "2099-01-01T00:00:00Z"));
    login(&mut c, &again, None).unwrap();
    assert_eq!(
        one::<String>(
            &mut c,
            "SELECT status || ' ' || expires_at::date FROM saml_jit.users WHERE subject = 'dated'"
        ),
        "active 2099-01-01"
    );
    let detail: String = one(
        &mut c,
        "SELECT detail::text FROM saml_jit.audit_log WHERE event = 'reactivated'",
    );
    assert!(detail.contains("\"from\": \"expired\""), "{detail}");

    // The strict fallback refuses a login without a usable expiry.
    c.batch_execute("UPDATE saml_jit.identity_provider SET expiry_fallback = 'reject'")
        .unwrap();
    let detail = assert_rejected(
        login(&mut c, &mint_one(spec("nodate")), None),
        "required_attribute_missing",
    );
    assert!(detail.contains("accountExpires"), "{detail}");
}

#[test]
fn list_based_disabling_reports_unknown_subjects_and_sticks() {
    let mut c = fresh_database("it_life_disable");
    trust_demo_idp(&mut c);
    for r in mint(&[spec("leaver"), spec("stayer")]) {
        login(&mut c, &r, None).unwrap();
    }
    let rows = c
        .query(
            "SELECT subject, outcome FROM saml_jit_disable_users($1, ARRAY['leaver', 'ghost', 'leaver'])",
            &[&IDP],
        )
        .unwrap();
    let outcomes: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        outcomes,
        [
            ("ghost".to_string(), "unknown".to_string()),
            ("leaver".to_string(), "disabled".to_string())
        ]
    );
    let again: String = one(
        &mut c,
        &format!("SELECT outcome FROM saml_jit_disable_users('{IDP}', ARRAY['leaver'])"),
    );
    assert_eq!(again, "already_disabled");
    // Refused at login, never re-enabled or recreated by JIT.
    assert_rejected(
        login(&mut c, &mint_one(spec("leaver")), None),
        "user_disabled",
    );
    assert_eq!(
        one::<String>(
            &mut c,
            "SELECT status FROM saml_jit.users WHERE subject = 'leaver'"
        ),
        "disabled"
    );
    assert_eq!(
        one::<i64>(
            &mut c,
            "SELECT count(*) FROM saml_jit.users WHERE subject = 'leaver'"
        ),
        1
    );
    // Deprovisioning leaves disabled users alone.
    c.batch_execute("UPDATE saml_jit.users SET expires_at = now() - interval '1 day'")
        .unwrap();
    assert_eq!(
        one::<i32>(&mut c, "SELECT saml_jit_deprovision_expired()"),
        1,
        "only the active one"
    );
    let enabled: Vec<(String, String)> = c
        .query(&format!("SELECT subject, outcome FROM saml_jit_enable_users('{IDP}', ARRAY['leaver', 'stayer', 'nobody'])"), &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        enabled,
        [
            ("leaver".to_string(), "enabled".to_string()),
            ("nobody".to_string(), "unknown".to_string()),
            ("stayer".to_string(), "not_disabled".to_string())
        ]
    );
    assert_eq!(
        one::<String>(
            &mut c,
            "SELECT status FROM saml_jit.users WHERE subject = 'leaver'"
        ),
        "expired",
        "its expiry had passed"
    );
    let err = c
        .batch_execute("SELECT * FROM saml_jit_disable_users('https://nobody/', ARRAY['x'])")
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42704");
}

#[test]
fn purge_removes_dead_replay_rows_old_sessions_and_old_audit_rows() {
    let mut c = fresh_database("it_life_purge");
    trust_demo_idp(&mut c);
    login(&mut c, &mint_one(spec("p")), None).unwrap();
    // A second login whose session the application ends.
    let ended: String = one(
        &mut c,
        &format!(
            "SELECT saml_jit_end_session(session_id)::text FROM saml_jit_login('{}')",
            mint_one(spec("q"))
        ),
    );
    assert_eq!(ended, "true");
    assert_eq!(
        one::<i64>(&mut c, "SELECT count(*) FROM saml_jit.consumed_assertion"),
        2
    );
    c.batch_execute("UPDATE saml_jit.audit_log SET occurred_at = now() - interval '2 years'")
        .unwrap();
    // A LogoutRequest this SP sent, as saml_jit_logout_request records it.
    c.batch_execute(
        "INSERT INTO saml_jit.logout_request (request_id, idp_id, expires_at)
         SELECT '_lr1', id, now() + interval '10 minutes' FROM saml_jit.identity_provider",
    )
    .unwrap();
    // Nothing is purged while the assertion could still be replayed, and the
    // audit log is kept forever by default.
    assert_eq!(
        one::<String>(&mut c, "SELECT (saml_jit_purge())::text"),
        "(0,0,0)"
    );
    assert_eq!(
        one::<i64>(&mut c, "SELECT count(*) FROM saml_jit.logout_request"),
        1
    );
    c.batch_execute("SET saml_jit.now_override = '2100-01-01T00:00:00Z'; SET saml_jit.audit_retention = '400 days'").unwrap();
    let purged: String = one(&mut c, "SELECT (saml_jit_purge())::text");
    assert_eq!(
        purged, "(2,5,1)",
        "the replay rows, the audit rows of both logins and of the logout, and the ended session \
         (the first session never ended and has no SessionNotOnOrAfter: it stays)"
    );
    assert_eq!(
        one::<i64>(&mut c, "SELECT count(*) FROM saml_jit.session"),
        1
    );
    assert_eq!(
        one::<i64>(&mut c, "SELECT count(*) FROM saml_jit.logout_request"),
        0,
        "a logout request nobody can answer any more"
    );
}

/// A large backlog of audit rows goes batch by batch, each batch its own
/// transaction: only rows older than the retention, whatever their ids.
#[test]
fn the_committing_purge_deletes_exactly_the_old_audit_rows_in_batches() {
    let mut c = fresh_database("it_life_purge_committing");
    trust_demo_idp(&mut c);
    // ids 1..50 old, 51..55 young, 56..60 old again (a late-committed
    // row), 61..70 young.
    c.batch_execute(
        "INSERT INTO saml_jit.audit_log (id, occurred_at, event, subject)
         SELECT i, CASE WHEN i <= 50 OR i BETWEEN 56 AND 60 THEN now() - interval '500 days' ELSE now() END,
                'login', 'u' || i
           FROM generate_series(1, 70) i",
    )
    .unwrap();
    // No retention: nothing goes.
    c.batch_execute("CALL saml_jit_purge_committing(batch_size => 7)")
        .unwrap();
    assert_eq!(
        one::<i64>(&mut c, "SELECT count(*) FROM saml_jit.audit_log"),
        70
    );
    let err = c
        .batch_execute("CALL saml_jit_purge_committing(batch_size => 0)")
        .unwrap_err();
    assert_eq!(sqlstate(&err), "22023", "{err}");
    c.batch_execute("SET saml_jit.audit_retention = '400 days'")
        .unwrap();
    let before: i64 = one(&mut c, "SELECT txid_current()");
    c.batch_execute("CALL saml_jit_purge_committing(batch_size => 7)")
        .unwrap();
    let after: i64 = one(&mut c, "SELECT txid_current()");
    let left: Vec<i64> = c
        .query("SELECT id FROM saml_jit.audit_log ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, (51..=55).chain(61..=70).collect::<Vec<i64>>());
    assert!(
        after - before > 60 / 7,
        "one transaction per batch of 7 ids (transaction ids {before} .. {after})"
    );
    // Only roles the administrator allows may purge.
    c.batch_execute("CREATE ROLE purge_stranger LOGIN").unwrap();
    c.batch_execute("SET ROLE purge_stranger").unwrap();
    let err = c
        .batch_execute("CALL saml_jit_purge_committing()")
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err}");
    c.batch_execute("RESET ROLE; DROP ROLE purge_stranger")
        .unwrap();
}

#[test]
fn a_real_pg_cron_job_expires_the_user() {
    // The cluster of scripts/test preloads pg_cron with cron.database_name = 'postgres'.
    let mut c = fresh_database("it_life_cron");
    trust_demo_idp(&mut c);
    login(&mut c, &mint_one(spec("temp")), None).unwrap();
    c.batch_execute("UPDATE saml_jit.users SET expires_at = now() - interval '1 second'")
        .unwrap();
    let mut admin = Client::connect(&dsn(), NoTls).unwrap();
    admin
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        .unwrap();
    admin
        .batch_execute(
            "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'saml_jit_it_deprovision';
             SELECT cron.schedule_in_database('saml_jit_it_deprovision', '* * * * *',
                                              'CALL saml_jit_deprovision_expired_committing()', 'it_life_cron')",
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut status = String::new();
    while Instant::now() < deadline {
        status = one(
            &mut c,
            "SELECT status FROM saml_jit.users WHERE subject = 'temp'",
        );
        if status == "expired" {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    admin
        .batch_execute(
            "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'saml_jit_it_deprovision'",
        )
        .unwrap();
    assert_eq!(
        status, "expired",
        "the pg_cron job did not run saml_jit_deprovision_expired_committing in time"
    );
    let by_cron: i64 = one(&mut c, "SELECT count(*) FROM saml_jit.audit_log WHERE event = 'deprovisioned' AND subject = 'temp'");
    assert_eq!(by_cron, 1);
}

#[test]
fn the_committing_procedure_expires_everything_in_small_transactions() {
    let mut c = fresh_database("it_life_batches");
    trust_demo_idp(&mut c);
    c.batch_execute(
        "INSERT INTO saml_jit.users (idp_id, subject, expires_at)
         SELECT 1, 'bulk' || i, now() - interval '1 hour' FROM generate_series(1, 25) i;
         INSERT INTO saml_jit.users (idp_id, subject, expires_at) VALUES (1, 'future', now() + interval '1 day');",
    )
    .unwrap();
    assert_eq!(
        one::<i32>(&mut c, "SELECT saml_jit_deprovision_expired(10, 1)"),
        10,
        "max_batches bounds one call"
    );
    c.batch_execute("CALL saml_jit_deprovision_expired_committing(4)")
        .unwrap();
    assert_eq!(
        one::<i64>(
            &mut c,
            "SELECT count(*) FROM saml_jit.users WHERE status = 'expired'"
        ),
        25
    );
    assert_eq!(
        one::<i64>(
            &mut c,
            "SELECT count(*) FROM saml_jit.audit_log WHERE event = 'deprovisioned'"
        ),
        25
    );
    assert_eq!(
        one::<String>(
            &mut c,
            "SELECT status FROM saml_jit.users WHERE subject = 'future'"
        ),
        "active"
    );
}

#[test]
fn deleting_a_user_or_an_idp_deletes_its_sessions_and_replay_rows() {
    // The login path's rows carry no foreign keys (performance); triggers
    // delete what the keys cascaded.
    let mut c = fresh_database("it_life_forget");
    trust_demo_idp(&mut c);
    login(&mut c, &mint_one(spec("gone")), None).unwrap();
    login(&mut c, &mint_one(spec("stays")), None).unwrap();
    c.batch_execute("DELETE FROM saml_jit.users WHERE subject = 'gone'")
        .unwrap();
    assert_eq!(
        one::<i64>(
            &mut c,
            "SELECT count(*) FROM saml_jit.session s LEFT JOIN saml_jit.users u ON u.id = s.user_id
              WHERE u.id IS NULL"
        ),
        0,
        "no session of a deleted user"
    );
    assert_eq!(
        one::<i64>(&mut c, "SELECT count(*) FROM saml_jit.session"),
        1
    );
    c.batch_execute("DELETE FROM saml_jit.users; DELETE FROM saml_jit.identity_provider")
        .unwrap();
    assert_eq!(
        one::<String>(
            &mut c,
            "SELECT (SELECT count(*) FROM saml_jit.session) || '/' ||
                    (SELECT count(*) FROM saml_jit.consumed_assertion)"
        ),
        "0/0"
    );
}
