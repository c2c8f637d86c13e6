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
