//! Replay protection with real concurrent sessions: the (IdP, assertion ID)
//! row is written by the login's own transaction, so two sessions presenting
//! one assertion at the same instant cannot both succeed, and a caller that
//! rolls back consumes nothing.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use saml_jit_integration::*;

fn concurrent_second_use(database: &str, first_commits: bool) -> Result<Login, Refusal> {
    let response = mint_one(spec("racer"));
    let mut a = Client::connect(&dsn_for(database, "postgres"), NoTls).unwrap();
    a.batch_execute("BEGIN").unwrap();
    login(&mut a, &response, None).expect("first use");
    let (tx, rx) = mpsc::channel();
    let db = database.to_string();
    let r = response.clone();
    let second = thread::spawn(move || {
        let mut b = Client::connect(&dsn_for(&db, "postgres"), NoTls).unwrap();
        tx.send(login(&mut b, &r, None)).unwrap();
    });
    // The second session waits on the first one's uncommitted replay row.
    assert!(
        rx.recv_timeout(Duration::from_millis(700)).is_err(),
        "the second use did not wait for the first transaction"
    );
    a.batch_execute(if first_commits { "COMMIT" } else { "ROLLBACK" })
        .unwrap();
    let outcome = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("second session answered");
    second.join().unwrap();
    outcome
}

#[test]
fn simultaneous_reuse_is_refused_once_the_first_commits() {
    let mut setup = fresh_database("it_replay_commit");
    trust_demo_idp(&mut setup);
    assert_rejected(concurrent_second_use("it_replay_commit", true), "replay");
    let logins: i64 = setup
        .query_one(
            "SELECT login_count FROM saml_jit.users WHERE subject = 'racer'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(logins, 1);
}

#[test]
fn a_rolled_back_login_consumes_nothing() {
    let mut setup = fresh_database("it_replay_rollback");
    trust_demo_idp(&mut setup);
    let second =
        concurrent_second_use("it_replay_rollback", false).expect("first attempt rolled back");
    assert_eq!(second.action, "created");
}

/// A replayed assertion is named `replay` whatever else is now wrong with it:
/// a mapping rule added since that it cannot satisfy, or its user disabled.
#[test]
fn replay_is_reported_before_what_changed_since() {
    let mut c = fresh_database("it_replay_first");
    trust_demo_idp(&mut c);
    let [first, second] = <[String; 2]>::try_from(mint(&[spec("rep1"), spec("rep2")])).unwrap();
    login(&mut c, &first, None).expect("first use");
    login(&mut c, &second, None).expect("first use");

    c.batch_execute(
        "INSERT INTO saml_jit.attribute_mapping (attribute, target, required)
         VALUES ('employeeNumber', 'employee_number', true)",
    )
    .unwrap();
    assert_rejected(login(&mut c, &first, None), "replay");

    c.batch_execute("DELETE FROM saml_jit.attribute_mapping")
        .unwrap();
    let disabled = c
        .query_one(
            "SELECT outcome FROM saml_jit_disable_users($1, ARRAY['rep2'])",
            &[&IDP],
        )
        .unwrap()
        .get::<_, String>(0);
    assert_eq!(disabled, "disabled");
    assert_rejected(login(&mut c, &second, None), "replay");

    // And a fresh assertion for the disabled user says so.
    assert_rejected(
        login(&mut c, &mint_one(spec("rep2")), None),
        "user_disabled",
    );
}
