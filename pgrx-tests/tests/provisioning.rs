//! JIT provisioning through real logins: the seed scenario, table-driven
//! attribute and group mapping, sync policies, concurrency with real
//! sessions, and configuration mistakes refused when written.

use std::sync::{Arc, Barrier};
use std::thread;

use serde_json::{json, Value};

use saml_jit_integration::*;

fn employee(user: &str, title: &str) -> Value {
    let mut s = spec(user);
    s["attributes"] = json!({
        "cn": ["Ada Lovelace"], "sn": ["Lovelace"], "givenName": ["Ada"],
        "mail": [format!("{user}@company-a.example")], "title": [title],
        "role": ["engineering"], "uid": [user], "o": ["Company A"], "employeeNumber": ["1815"]
    });
    s
}

fn one<T: for<'a> postgres::types::FromSql<'a>>(c: &mut Client, sql: &str) -> T {
    c.query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

fn json_of(c: &mut Client, sql: &str) -> Value {
    serde_json::from_str(&one::<String>(c, sql)).unwrap()
}

#[test]
fn seed_scenario_new_employee_of_company_a() {
    let mut c = fresh_database("it_prov_seed");
    trust_demo_idp(&mut c);
    assert_eq!(one::<i64>(&mut c, "SELECT count(*) FROM saml_jit.users"), 0);
    let first = mint_one(employee("ada", "Analyst"));
    let login1 = login(&mut c, &first, None).expect("first login");
    assert_eq!(login1.action, "created");
    // The creation's audit row carries the whole new row but its attributes
    // (the statement lists the columns: a column added to users must appear).
    assert!(
        one::<bool>(
            &mut c,
            "SELECT a.detail -> 'user' = to_jsonb(u) - 'attributes'
               FROM saml_jit.audit_log a JOIN saml_jit.users u ON u.id = a.user_id
              WHERE a.event = 'created'"
        ),
        "the 'created' row image"
    );
    let row = c
        .query_one(
            "SELECT email, first_name, last_name, display_name, title, organization, employee_number,
                    groups, attributes ? 'urn:oid:0.9.2342.19200300.100.1.1', login_count
               FROM saml_jit.users WHERE subject = 'ada'",
            &[],
        )
        .unwrap();
    assert_eq!(
        row.get::<_, Option<String>>(0).as_deref(),
        Some("ada@company-a.example")
    );
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("Ada"));
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("Lovelace"));
    assert_eq!(
        row.get::<_, Option<String>>(3).as_deref(),
        Some("Ada Lovelace")
    );
    assert_eq!(row.get::<_, Option<String>>(4).as_deref(), Some("Analyst"));
    assert_eq!(
        row.get::<_, Option<String>>(5).as_deref(),
        Some("Company A")
    );
    assert_eq!(row.get::<_, Option<String>>(6).as_deref(), Some("1815"));
    assert_eq!(
        row.get::<_, Vec<String>>(7),
        vec!["engineering"],
        "the role becomes a group"
    );
    assert!(row.get::<_, bool>(8), "uid is kept in attributes");
    assert_eq!(row.get::<_, i64>(9), 1);

    // A second login with a changed title updates it, and the audit says so.
    let second = mint_one(employee("ada", "Lead Analyst"));
    assert_eq!(login(&mut c, &second, None).unwrap().action, "updated");
    let change = json_of(&mut c, "SELECT detail::text FROM saml_jit.audit_log WHERE event = 'updated' ORDER BY id DESC LIMIT 1");
    assert_eq!(change["changes"]["title"]["old"], "Analyst");
    assert_eq!(change["changes"]["title"]["new"], "Lead Analyst");
    assert_eq!(change["changes"]["title"]["attribute"], "urn:oid:2.5.4.12");
    assert_eq!(
        change["changes"].as_object().unwrap().len(),
        2,
        "title and the attributes json: {change}"
    );
    let events: Vec<String> = c
        .query("SELECT event FROM saml_jit.audit_log ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(events, ["login", "created", "login", "updated"]);

    // Another IdP sending the same NameID gets its own user; Ada is untouched.
    c.execute(
        "SELECT saml_jit_add_idp('https://idp.company-b.example/', $1)",
        &[&read_fixture("other-idp.crt")],
    )
    .unwrap();
    let mut other = employee("ada", "Intruder");
    other["idp"] = json!("https://idp.company-b.example/");
    other["key"] = json!(fixture("other-idp.key"));
    other["cert"] = json!(fixture("other-idp.crt"));
    assert_eq!(
        login(&mut c, &mint_one(other), None).unwrap().action,
        "created"
    );
    assert_eq!(
        one::<String>(&mut c, "SELECT title FROM saml_jit.users u JOIN saml_jit.identity_provider i ON i.id = u.idp_id WHERE i.entity_id = 'https://idp.test.example/'"),
        "Lead Analyst"
    );
    assert_eq!(
        one::<i64>(
            &mut c,
            "SELECT count(*) FROM saml_jit.users WHERE subject = 'ada'"
        ),
        2
    );
}

#[test]
fn group_rules_map_drop_and_remove_stale_groups() {
    let mut c = fresh_database("it_prov_groups");
    trust_demo_idp(&mut c);
    c.batch_execute(
        "INSERT INTO saml_jit.group_mapping (value, group_name) VALUES ('engineering', 'eng');
         INSERT INTO saml_jit.group_mapping (value, is_regex, group_name) VALUES ('^team-(.*)$', true, 'squad:\\1');
         UPDATE saml_jit.identity_provider SET unmapped_groups = 'drop';",
    )
    .unwrap();
    let mut s = spec("grace");
    s["attributes"]["role"] = json!(["engineering", "team-alpha", "unknown-thing"]);
    let l = login(&mut c, &mint_one(s.clone()), None).unwrap();
    assert_eq!(l.groups, vec!["eng", "squad:alpha"]);
    s["attributes"]["role"] = json!(["team-beta"]);
    let l = login(&mut c, &mint_one(s), None).unwrap();
    assert_eq!(l.groups, vec!["squad:beta"], "stale groups are removed");
    let detail = json_of(&mut c, "SELECT detail::text FROM saml_jit.audit_log WHERE event = 'updated' ORDER BY id DESC LIMIT 1");
    assert_eq!(detail["groups_added"], json!(["squad:beta"]));
    assert_eq!(detail["groups_removed"], json!(["eng", "squad:alpha"]));
}

#[test]
fn sync_policies_and_jit_switches() {
    let mut c = fresh_database("it_prov_sync");
    trust_demo_idp(&mut c);
    // Title is imported once; the application owns it afterwards.
    c.batch_execute(
        "INSERT INTO saml_jit.attribute_mapping (attribute, target, sync) VALUES ('title', 'title', 'on_create')",
    )
    .unwrap();
    login(&mut c, &mint_one(employee("lin", "Analyst")), None).unwrap();
    c.batch_execute("UPDATE saml_jit.users SET title = 'Set by the app' WHERE subject = 'lin'")
        .unwrap();
    login(&mut c, &mint_one(employee("lin", "Lead")), None).unwrap();
    assert_eq!(
        one::<String>(
            &mut c,
            "SELECT title FROM saml_jit.users WHERE subject = 'lin'"
        ),
        "Set by the app"
    );
    // jit_update = false: only last_login_at and login_count move.
    c.batch_execute("UPDATE saml_jit.identity_provider SET jit_update = false")
        .unwrap();
    let mut changed = employee("lin", "Lead");
    changed["attributes"]["mail"] = json!(["changed@company-a.example"]);
    let l = login(&mut c, &mint_one(changed), None).unwrap();
    assert_eq!(l.email.as_deref(), Some("lin@company-a.example"));
    assert_eq!(
        one::<i64>(
            &mut c,
            "SELECT login_count FROM saml_jit.users WHERE subject = 'lin'"
        ),
        3
    );
    // jit_create = false: existing users still log in.
    c.batch_execute("UPDATE saml_jit.identity_provider SET jit_create = false")
        .unwrap();
    login(&mut c, &mint_one(employee("lin", "Lead")), None).expect("existing user");
    assert_rejected(
        login(&mut c, &mint_one(employee("newbie", "x")), None),
        "provisioning_disabled",
    );
}

#[test]
fn configuration_mistakes_are_refused_when_written() {
    let mut c = fresh_database("it_prov_config");
    trust_demo_idp(&mut c);
    let attempts = [
        ("INSERT INTO saml_jit.attribute_mapping (attribute, target) VALUES ('x', 'password')", "23514"),
        ("INSERT INTO saml_jit.attribute_mapping (attribute, target, required, default_value) VALUES ('x', 'email', true, 'd')", "23514"),
        ("INSERT INTO saml_jit.attribute_mapping (attribute, target, multi_value) VALUES ('x', 'groups', 'join')", "23514"),
        ("INSERT INTO saml_jit.attribute_mapping (attribute, target, multi_value) VALUES ('x', 'email', 'sometimes')", "23514"),
        ("INSERT INTO saml_jit.attribute_mapping (attribute, target, sync) VALUES ('x', 'email', 'never')", "23514"),
        ("INSERT INTO saml_jit.group_mapping (value, is_regex, group_name) VALUES ('(unclosed', true, 'g')", "2201B"),
        ("UPDATE saml_jit.identity_provider SET unmapped_groups = 'maybe'", "23514"),
    ];
    for (sql, state) in attempts {
        let err = c.batch_execute(sql).expect_err(sql);
        assert_eq!(sqlstate(&err), state, "{sql}: {err:?}");
    }
    c.batch_execute("INSERT INTO saml_jit.attribute_mapping (attribute, target) VALUES ('dept', 'attributes.department')")
        .expect("a key of users.attributes is a valid target");
}

#[test]
fn thirty_two_sessions_first_login_of_the_same_user() {
    let mut c = fresh_database("it_prov_concurrent");
    trust_demo_idp(&mut c);
    let responses = mint(&vec![spec("crowd"); 32]);
    let barrier = Arc::new(Barrier::new(32));
    let handles: Vec<_> = responses
        .into_iter()
        .map(|r| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut client =
                    Client::connect(&dsn_for("it_prov_concurrent", "postgres"), NoTls).unwrap();
                barrier.wait();
                login(&mut client, &r, None)
            })
        })
        .collect();
    let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let errors: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(errors.is_empty(), "errors: {errors:?}");
    let created = outcomes
        .iter()
        .filter(|o| o.as_ref().unwrap().action == "created")
        .count();
    assert_eq!(created, 1);
    assert_eq!(
        one::<i64>(
            &mut c,
            "SELECT login_count FROM saml_jit.users WHERE subject = 'crowd'"
        ),
        32
    );
}

#[test]
fn thirty_two_sessions_presenting_one_assertion() {
    let mut c = fresh_database("it_prov_same_assertion");
    trust_demo_idp(&mut c);
    let response = mint_one(spec("once"));
    let barrier = Arc::new(Barrier::new(32));
    let handles: Vec<_> = (0..32)
        .map(|_| {
            let (barrier, r) = (barrier.clone(), response.clone());
            thread::spawn(move || {
                let mut client =
                    Client::connect(&dsn_for("it_prov_same_assertion", "postgres"), NoTls).unwrap();
                barrier.wait();
                login(&mut client, &r, None)
            })
        })
        .collect();
    let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
    for o in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert_eq!(
            (o.sqlstate.as_str(), o.reason.as_str()),
            ("28000", "replay"),
            "{o:?}"
        );
    }
    assert_eq!(
        one::<i64>(&mut c, "SELECT login_count FROM saml_jit.users"),
        1
    );
}

/// `updated_at` says when the user's data last changed, not when they last
/// logged in (that is `last_login_at`).
#[test]
fn updated_at_moves_only_when_a_value_changes() {
    let mut c = fresh_database("it_updated_at");
    trust_demo_idp(&mut c);
    let mut changed = spec("steady");
    changed["attributes"]["title"] = json!(["Lead"]);
    let [first, same, retitled] =
        <[String; 3]>::try_from(mint(&[spec("steady"), spec("steady"), changed])).unwrap();
    let stamps = |c: &mut Client| -> (String, String) {
        let row = c
            .query_one(
                "SELECT updated_at::text, last_login_at::text FROM saml_jit.users WHERE subject = 'steady'",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    login(&mut c, &first, None).unwrap();
    let (created, _) = stamps(&mut c);
    login(&mut c, &same, None).unwrap();
    let (after_same, login_same) = stamps(&mut c);
    assert_eq!(after_same, created, "nothing changed");
    assert_ne!(login_same, created, "but the login is recorded");
    login(&mut c, &retitled, None).unwrap();
    let (after_change, _) = stamps(&mut c);
    assert_ne!(after_change, created, "the title changed");
}

/// With jit_create = false the login runs the other upsert statement; it too
/// writes the login audit row and the replay row.
#[test]
fn without_jit_create_an_existing_user_is_audited_and_replay_guarded() {
    let mut c = fresh_database("it_no_create_audit");
    trust_demo_idp(&mut c);
    let [first, second, third] =
        <[String; 3]>::try_from(mint(&[spec("kept"), spec("kept"), spec("kept")])).unwrap();
    login(&mut c, &first, None).unwrap();
    c.batch_execute("UPDATE saml_jit.identity_provider SET jit_create = false")
        .unwrap();
    let l = login(&mut c, &second, None).expect("an existing user still logs in");
    assert_eq!(l.action, "updated");
    assert_eq!(
        one::<i64>(
            &mut c,
            "SELECT count(*) FROM saml_jit.audit_log WHERE event IN ('updated', 'reactivated')"
        ),
        0,
        "nothing of the user changed"
    );
    // An expired user logging in again is reactivated, and the audit says so.
    c.batch_execute("UPDATE saml_jit.users SET status = 'expired' WHERE subject = 'kept'")
        .unwrap();
    login(&mut c, &third, None).expect("an expired user logs in again");
    let detail = json_of(
        &mut c,
        "SELECT detail::text FROM saml_jit.audit_log WHERE event = 'reactivated'",
    );
    assert_eq!(
        (&detail["from"], &detail["to"]),
        (&json!("expired"), &json!("active"))
    );
    let (rows, distinct): (i64, i64) = c
        .query_one(
            "SELECT count(*), count(DISTINCT assertion_id) FROM saml_jit.audit_log WHERE event = 'login'",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((rows, distinct), (3, 3), "one login row per assertion");
    assert_rejected(login(&mut c, &second, None), "replay");
}
