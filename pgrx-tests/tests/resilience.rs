//! What hostile input and hard failures cannot do: keep a backend busy past a
//! cancel or a statement timeout, leave half a login behind after a crash, or
//! move the clock of the lifecycle functions from an unprivileged session.

use std::time::{Duration, Instant};

use saml_jit_integration::*;

/// One of the costliest responses the structural limits admit (BENCHMARKS.md,
/// "Hostile input"): a signed response whose Assertion is filled up to the
/// node limit with elements at the depth limit, so every node is
/// canonicalized (at a cost that grows with its depth) before the digest
/// fails.
pub fn worst_case(xml: &str) -> String {
    let filler = format!(
        "{}{}{}",
        "<x>".repeat(12),
        "<y/>".repeat(4_800),
        "</x>".repeat(12)
    );
    let inclusive = xml.to_string();
    let subject = find_start_tag(&inclusive, "Subject").unwrap();
    to_response(&format!(
        "{}<saml:Advice xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\">{filler}</saml:Advice>{}",
        &inclusive[..subject],
        &inclusive[subject..]
    ))
}

const LOOP: &str = "DO $$ BEGIN
    FOR i IN 1..100000 LOOP
        BEGIN
            PERFORM * FROM saml_jit_login(current_setting('it.response'));
        EXCEPTION WHEN invalid_authorization_specification THEN NULL;
        END;
    END LOOP;
END $$";

fn hostile_session(database: &str) -> (Client, String) {
    let mut c = fresh_database(database);
    trust_demo_idp(&mut c);
    // Three active certificates: every one is tried.
    for _ in 0..2 {
        c.execute(
            "SELECT saml_jit_add_idp_certificate($1, $2)",
            &[&IDP, &read_fixture("other-idp.crt")],
        )
        .ok();
    }
    let response = worst_case(&to_xml(&mint_one(spec("worst"))));
    assert!(response.len() < 1024 * 1024, "within max_response_bytes");
    let refusal = login(&mut c, &response, None).expect_err("the worst case is refused");
    assert_eq!(refusal.sqlstate, "28000", "{refusal:?}");
    c.execute("SELECT set_config('it.response', $1, false)", &[&response])
        .unwrap();
    (c, response)
}

#[test]
fn statement_timeout_ends_a_loop_of_hostile_logins() {
    let (mut c, _) = hostile_session("it_res_timeout");
    c.batch_execute("SET statement_timeout = '1s'").unwrap();
    let started = Instant::now();
    let err = c
        .batch_execute(LOOP)
        .expect_err("the loop must be cut short");
    assert_eq!(sqlstate(&err), "57014", "{err:?}");
    // Not a timing assertion: the loop would run for minutes otherwise.
    eprintln!(
        "statement_timeout took effect after {:?}",
        started.elapsed()
    );
    c.batch_execute("RESET statement_timeout; SELECT 1")
        .unwrap();
}

#[test]
fn pg_cancel_backend_ends_a_loop_of_hostile_logins() {
    let (mut c, _) = hostile_session("it_res_cancel");
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let canceller = std::thread::spawn(move || {
        let mut admin = Client::connect(&dsn(), NoTls).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let sent: bool = admin
            .query_one("SELECT pg_cancel_backend($1)", &[&pid])
            .unwrap()
            .get(0);
        assert!(sent);
    });
    let err = c
        .batch_execute(LOOP)
        .expect_err("the loop must be cancelled");
    canceller.join().unwrap();
    assert_eq!(sqlstate(&err), "57014", "{err:?}");
    c.batch_execute("SELECT 1").unwrap();
}

/// The lifecycle clock on a server that does not preload saml_jit, where
/// `saml_jit.now_override` is a placeholder any role may SET until the
/// library loads.
#[test]
fn an_unprivileged_session_cannot_move_the_lifecycle_clock() {
    let Ok(plain) = std::env::var("SAML_JIT_TEST_DSN_NO_PRELOAD") else {
        panic!("SAML_JIT_TEST_DSN_NO_PRELOAD is not set: run the tests through scripts/test");
    };
    let mut admin = Client::connect(&plain, NoTls).unwrap();
    for statement in [
        "DROP DATABASE IF EXISTS it_res_clock WITH (FORCE)",
        "CREATE DATABASE it_res_clock",
        "DROP ROLE IF EXISTS it_clock_operator",
        "CREATE ROLE it_clock_operator LOGIN",
    ] {
        admin.batch_execute(statement).unwrap();
    }
    let mut c = Client::connect(&format!("{plain} dbname=it_res_clock"), NoTls).unwrap();
    c.batch_execute("CREATE EXTENSION saml_jit").unwrap();
    trust_demo_idp(&mut c);
    c.execute(
        "UPDATE saml_jit.identity_provider SET account_ttl = '30 days' WHERE entity_id = $1",
        &[&IDP],
    )
    .unwrap();
    login(&mut c, &mint_one(spec("clock")), None).expect("login");
    c.batch_execute(
        "GRANT EXECUTE ON FUNCTION saml_jit_purge(), saml_jit_deprovision_expired(integer, integer)
             TO it_clock_operator",
    )
    .unwrap();
    let counts = |c: &mut Client| -> (i64, i64) {
        let row = c
            .query_one(
                "SELECT (SELECT count(*) FROM saml_jit.users WHERE status = 'active'),
                        (SELECT count(*) FROM saml_jit.consumed_assertion)",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(counts(&mut c), (1, 1));
    for call in [
        "SELECT saml_jit_deprovision_expired()",
        "SELECT * FROM saml_jit_purge()",
    ] {
        // A new backend: the library is not loaded, the setting a placeholder.
        let mut operator = Client::connect(
            &format!("{plain} dbname=it_res_clock user=it_clock_operator"),
            NoTls,
        )
        .unwrap();
        operator
            .batch_execute("SET saml_jit.now_override = '2100-01-01T00:00:00Z'")
            .expect("a placeholder accepts any value");
        let outcome = operator.batch_execute(call);
        if let Err(e) = &outcome {
            assert_eq!(sqlstate(e), "42501", "{call}: {e:?}");
        }
        assert_eq!(
            counts(&mut c),
            (1, 1),
            "{call} ran in 2100 for an unprivileged role ({outcome:?})"
        );
    }
    // A superuser's session may still use it (tests do).
    c.batch_execute("SET saml_jit.now_override = '2100-01-01T00:00:00Z'")
        .unwrap();
    let expired: i32 = c
        .query_one("SELECT saml_jit_deprovision_expired()", &[])
        .unwrap()
        .get(0);
    assert_eq!(expired, 1);
}

/// SIGKILL of a backend in the middle of logins, several sessions at once:
/// after crash recovery every user has its login audit row and replay row,
/// and every replay row belongs to a committed login.
#[test]
fn a_crash_in_the_middle_of_logins_leaves_no_partial_state() {
    let Ok(crash) = std::env::var("SAML_JIT_TEST_DSN_CRASH") else {
        panic!("SAML_JIT_TEST_DSN_CRASH is not set: run the tests through scripts/test");
    };
    let mut admin = Client::connect(&crash, NoTls).unwrap();
    admin
        .batch_execute("DROP DATABASE IF EXISTS it_res_crash WITH (FORCE)")
        .unwrap();
    admin.batch_execute("CREATE DATABASE it_res_crash").unwrap();
    let db = format!("{crash} dbname=it_res_crash");
    let mut c = Client::connect(&db, NoTls).unwrap();
    c.batch_execute("CREATE EXTENSION saml_jit").unwrap();
    trust_demo_idp(&mut c);
    let specs: Vec<_> = (0..400).map(|i| spec(&format!("crash{i}"))).collect();
    let responses = std::sync::Arc::new(mint(&specs));
    let sessions = 4;
    let workers: Vec<_> = (0..sessions)
        .map(|w| {
            let responses = responses.clone();
            let db = db.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(&db, NoTls).unwrap();
                let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
                let mut done = 0usize;
                for r in responses.iter().skip(w).step_by(sessions) {
                    // The short sleep keeps each transaction open a moment
                    // after its login wrote, so the kill below always finds
                    // logins in flight however fast they are.
                    match c.query_one(
                        "SELECT user_id FROM saml_jit_login($1) CROSS JOIN pg_sleep(0.01)",
                        &[r],
                    ) {
                        Ok(_) => done += 1,
                        Err(_) => break,
                    }
                }
                (pid, done)
            })
        })
        .collect();
    // Let the logins run (some have committed), then kill one backend that
    // is inside a login transaction, the hard way.
    let deadline = Instant::now() + Duration::from_secs(60);
    let victim: i32 = loop {
        let committed: i64 = c
            .query_one("SELECT count(*) FROM saml_jit.users", &[])
            .unwrap()
            .get(0);
        let busy = c
            .query_opt(
                "SELECT pid FROM pg_stat_activity WHERE datname = 'it_res_crash'
                   AND pid <> pg_backend_pid() AND state = 'active'
                   AND query LIKE '%saml_jit_login%' LIMIT 1",
                &[],
            )
            .unwrap();
        match busy {
            Some(row) if committed >= 20 => break row.get(0),
            _ if Instant::now() >= deadline => panic!("no login in flight to interrupt"),
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let killed = std::process::Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let done: usize = workers.into_iter().map(|w| w.join().unwrap().1).sum();
    assert!(done < responses.len(), "the crash interrupted the logins");
    // Crash recovery: wait until the server accepts connections again.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut c = loop {
        match Client::connect(&db, NoTls) {
            Ok(mut c) => {
                if c.batch_execute("SELECT 1").is_ok() {
                    break c;
                }
            }
            Err(e) if Instant::now() >= deadline => panic!("the server did not come back: {e}"),
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let row = c
        .query_one(
            "SELECT
               (SELECT count(*) FROM saml_jit.users),
               (SELECT count(*) FROM saml_jit.users u WHERE NOT EXISTS
                  (SELECT 1 FROM saml_jit.audit_log a WHERE a.user_id = u.id AND a.event = 'login')),
               (SELECT count(*) FROM saml_jit.users u WHERE NOT EXISTS
                  (SELECT 1 FROM saml_jit.audit_log a JOIN saml_jit.consumed_assertion r
                      ON r.assertion_id = a.assertion_id
                    WHERE a.user_id = u.id AND a.event = 'login')),
               (SELECT count(*) FROM saml_jit.consumed_assertion r WHERE NOT EXISTS
                  (SELECT 1 FROM saml_jit.audit_log a
                    WHERE a.assertion_id = r.assertion_id AND a.event = 'login'))",
            &[],
        )
        .unwrap();
    let (users, no_audit, no_replay, orphan_replay): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert!(users > 0, "some logins committed before the crash");
    assert_eq!(
        (no_audit, no_replay, orphan_replay),
        (0, 0, 0),
        "partial state after crash recovery ({users} users)"
    );
    // And the server works: a new login succeeds, a committed one is a replay.
    login(&mut c, &mint_one(spec("after-crash")), None).expect("login after recovery");
}
