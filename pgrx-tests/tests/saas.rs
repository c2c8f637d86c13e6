//! JIT for a multi-tenant SaaS (API.md 0.2, "Fitting the application's own
//! data model", "Login row additions", sessions): the on_login hook writing
//! the application's own tables, e-mail domains, required groups, sessions
//! and relay_state, with real logins minted by pysaml2.

use std::sync::{Arc, Barrier};
use std::thread;

use serde_json::{json, Value};

use saml_jit_integration::*;

fn one<T: for<'a> postgres::types::FromSql<'a>>(c: &mut Client, sql: &str) -> T {
    c.query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

fn count(c: &mut Client, table: &str) -> i64 {
    one(c, &format!("SELECT count(*) FROM {table}"))
}

/// The application's own data model and a hook that fills it, as a SaaS
/// would write it: accounts linked by e-mail only when the IdP may vouch for
/// it, memberships with a role derived from the mapped groups.
const APP_SCHEMA: &str = "
    CREATE SCHEMA app;
    CREATE TABLE app.accounts (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        email      text NOT NULL UNIQUE,
        saml_user  uuid UNIQUE,
        invited    boolean NOT NULL DEFAULT false
    );
    CREATE TABLE app.memberships (
        account_id bigint REFERENCES app.accounts,
        role       text NOT NULL,
        PRIMARY KEY (account_id)
    );
    CREATE TABLE app.events (event jsonb);
    CREATE FUNCTION app.on_login(event jsonb) RETURNS void
    LANGUAGE plpgsql SET search_path = app, pg_temp AS $$
    DECLARE
        account bigint;
    BEGIN
        INSERT INTO events VALUES (event);
        IF event ->> 'email' LIKE 'suspended%' THEN
            RAISE EXCEPTION 'organization suspended: contact billing';
        END IF;
        SELECT id INTO account FROM accounts WHERE saml_user = (event ->> 'user_id')::uuid;
        IF account IS NULL AND (event ->> 'email_verified')::boolean THEN
            UPDATE accounts SET saml_user = (event ->> 'user_id')::uuid
             WHERE email = lower(event ->> 'email') AND saml_user IS NULL
            RETURNING id INTO account;
        END IF;
        IF account IS NULL THEN
            INSERT INTO accounts (email, saml_user)
            VALUES (coalesce(lower(event ->> 'email'), event ->> 'user_id'), (event ->> 'user_id')::uuid)
            ON CONFLICT (saml_user) DO NOTHING
            RETURNING id INTO account;
            IF account IS NULL THEN  -- a concurrent first login made it
                SELECT id INTO account FROM accounts WHERE saml_user = (event ->> 'user_id')::uuid;
            END IF;
        END IF;
        INSERT INTO memberships VALUES (account,
               CASE WHEN event -> 'groups' ? 'admins' THEN 'admin' ELSE 'member' END)
        ON CONFLICT (account_id) DO UPDATE SET role = EXCLUDED.role;
    END
    $$;
";

fn saas_db(name: &str) -> Client {
    let mut c = fresh_database(name);
    trust_demo_idp(&mut c);
    c.batch_execute(APP_SCHEMA).unwrap();
    c
}

fn person(user: &str, email: &str, groups: &[&str]) -> Value {
    let mut s = spec(user);
    s["attributes"]["mail"] = json!([email]);
    s["attributes"]["groups"] = json!(groups);
    s
}

#[test]
fn the_hook_writes_the_application_tables_in_the_login_transaction() {
    let mut c = saas_db("it_saas_hook");
    c.batch_execute(
        "UPDATE saml_jit.identity_provider SET on_login = 'app.on_login(jsonb)', email_domains = '{example.com}';
         INSERT INTO app.accounts (email, invited) VALUES ('ada@example.com', true);",
    )
    .unwrap();
    let ada = login(
        &mut c,
        &mint_one(person("ada", "Ada@Example.com", &["admins"])),
        None,
    )
    .unwrap();
    assert!(ada.email_verified);
    // The invited account is linked, not duplicated, and gets its role.
    let (accounts, linked, role): (i64, Option<String>, String) = {
        let r = c
            .query_one(
                "SELECT (SELECT count(*) FROM app.accounts), a.saml_user::text, m.role
                   FROM app.accounts a JOIN app.memberships m ON m.account_id = a.id
                  WHERE a.email = 'ada@example.com'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!(
        (accounts, linked.as_deref(), role.as_str()),
        (1, Some(ada.user_id.as_str()), "admin")
    );
    // The event carries what API.md lists, as the login row says it.
    let event: Value =
        serde_json::from_str(&one::<String>(&mut c, "SELECT event::text FROM app.events")).unwrap();
    let keys: Vec<&str> = event
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "user_id",
        "idp_entity_id",
        "subject",
        "name_id",
        "email",
        "email_verified",
        "display_name",
        "first_name",
        "last_name",
        "groups",
        "attributes",
        "action",
        "session_id",
        "client_addr",
        "assertion_id",
    ] {
        assert!(keys.contains(&key), "event lacks {key}: {event}");
    }
    assert_eq!(event["user_id"], ada.user_id.as_str());
    assert_eq!(event["session_id"], ada.session_id.as_str());
    assert_eq!(event["action"], "created");
    assert_eq!(event["email_verified"], true);
    assert_eq!(event["first_name"], "Ada");
    assert_eq!(event["groups"], json!(["admins"]));
    assert_eq!(event["idp_entity_id"], IDP);

    // A SQL-language hook whose last statement is an INSERT (its void result
    // is NULL) works too, and the SP's hook is the default for its IdPs.
    c.batch_execute(
        "CREATE FUNCTION app.sql_hook(event jsonb) RETURNS void LANGUAGE sql
             AS $$ INSERT INTO app.events VALUES (event || '{\"via\": \"sql\"}') $$;
         UPDATE saml_jit.identity_provider SET on_login = NULL;
         UPDATE saml_jit.service_provider SET on_login = 'app.sql_hook(jsonb)';",
    )
    .unwrap();
    let again = login(
        &mut c,
        &mint_one(person("ada", "ada@example.com", &["admins"])),
        None,
    )
    .unwrap();
    assert_eq!(again.action, "updated");
    assert_eq!(
        one::<i64>(
            &mut c,
            "SELECT count(*) FROM app.events WHERE event ->> 'via' = 'sql'"
        ),
        1
    );
    // The IdP's own hook wins over the SP's.
    c.batch_execute("UPDATE saml_jit.identity_provider SET on_login = 'app.on_login(jsonb)'")
        .unwrap();
    login(
        &mut c,
        &mint_one(person("ada", "ada@example.com", &[])),
        None,
    )
    .unwrap();
    assert_eq!(count(&mut c, "app.events"), 3);
    assert_eq!(
        one::<String>(&mut c, "SELECT role FROM app.memberships"),
        "member"
    );
}

#[test]
fn a_refusing_hook_leaves_nothing_behind() {
    let mut c = saas_db("it_saas_refuse");
    c.batch_execute(
        "UPDATE saml_jit.identity_provider SET on_login = 'app.on_login(jsonb)';
         CREATE FUNCTION app.raises(event jsonb) RETURNS void LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'seat limit reached'; END $$;",
    )
    .unwrap();
    // This hook writes (app.events) and then raises.
    let detail = assert_rejected(
        login(
            &mut c,
            &mint_one(person("eve", "suspended@example.com", &[])),
            None,
        ),
        "provisioning_refused",
    );
    assert_eq!(detail, "organization suspended: contact billing");
    for table in [
        "saml_jit.users",
        "saml_jit.session",
        "saml_jit.consumed_assertion",
        "app.events",
        "app.accounts",
    ] {
        assert_eq!(count(&mut c, table), 0, "{table} after a refusing hook");
    }
    assert_eq!(
        one::<i64>(
            &mut c,
            "SELECT count(*) FROM saml_jit.audit_log WHERE event <> 'rejected'"
        ),
        0,
        "no login or created row"
    );
    // A hook that only raises; the login of a returning user too.
    login(
        &mut c,
        &mint_one(person("bob", "bob@example.com", &[])),
        None,
    )
    .unwrap();
    c.batch_execute("UPDATE saml_jit.identity_provider SET on_login = 'app.raises(jsonb)'")
        .unwrap();
    let before: i64 = one(
        &mut c,
        "SELECT login_count FROM saml_jit.users WHERE subject = 'bob'",
    );
    let detail = assert_rejected(
        login(
            &mut c,
            &mint_one(person("bob", "bob@example.com", &[])),
            None,
        ),
        "provisioning_refused",
    );
    assert_eq!(detail, "seat limit reached");
    assert_eq!(
        one::<i64>(
            &mut c,
            "SELECT login_count FROM saml_jit.users WHERE subject = 'bob'"
        ),
        before
    );
    assert_eq!(
        count(&mut c, "saml_jit.session"),
        1,
        "only bob's first session"
    );
    // Inside a transaction the caller controls, a refusal aborts it all.
    c.batch_execute("BEGIN; INSERT INTO app.events VALUES ('{\"caller\": true}')")
        .unwrap();
    let r = c.query_one(
        "SELECT * FROM saml_jit_login($1)",
        &[&mint_one(person("bob", "bob@example.com", &[]))],
    );
    assert_eq!(sqlstate(&r.unwrap_err()), "28000");
    c.batch_execute("ROLLBACK").unwrap();
    assert_eq!(
        count(&mut c, "app.events"),
        1,
        "the first login's event only"
    );
}

#[test]
fn a_hook_cannot_start_another_login() {
    let mut c = saas_db("it_saas_nested");
    let inner = mint_one(person("inner", "inner@example.com", &[]));
    c.batch_execute(&format!(
        "CREATE FUNCTION app.nested(event jsonb) RETURNS void LANGUAGE plpgsql AS $$
         BEGIN PERFORM * FROM public.saml_jit_login('{inner}'); END $$;
         UPDATE saml_jit.identity_provider SET on_login = 'app.nested(jsonb)';"
    ))
    .unwrap();
    let detail = assert_rejected(
        login(
            &mut c,
            &mint_one(person("outer", "outer@example.com", &[])),
            None,
        ),
        "provisioning_refused",
    );
    assert!(
        detail.contains("cannot be called from an on_login hook"),
        "{detail}"
    );
    assert_eq!(count(&mut c, "saml_jit.users"), 0);
}

#[test]
fn hook_mistakes_are_refused_when_configured_or_at_login() {
    let mut c = saas_db("it_saas_hook_config");
    c.batch_execute(
        "CREATE FUNCTION app.wrong_arg(event json) RETURNS void LANGUAGE sql AS $$ SELECT $$;
         CREATE FUNCTION app.wrong_result(event jsonb) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
         CREATE FUNCTION app.two_args(event jsonb, extra int DEFAULT 0) RETURNS void LANGUAGE sql AS $$ SELECT $$;
         CREATE PROCEDURE app.a_procedure(event jsonb) LANGUAGE sql AS $$ SELECT $$;
         CREATE FUNCTION app.foreign_owner(event jsonb) RETURNS void LANGUAGE sql AS $$ SELECT $$;
         DO $$ BEGIN CREATE ROLE it_saas_other; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
         ALTER FUNCTION app.foreign_owner(jsonb) OWNER TO it_saas_other;",
    )
    .unwrap();
    for (hook, says) in [
        ("app.wrong_arg(json)", "exactly one argument, of type jsonb"),
        ("app.wrong_result(jsonb)", "must return void"),
        ("app.two_args(jsonb, int)", "exactly one argument"),
        ("app.a_procedure(jsonb)", "not a plain function"),
        ("app.foreign_owner(jsonb)", "owned by it_saas_other"),
    ] {
        for table in ["identity_provider", "service_provider"] {
            let err = c
                .execute(
                    &format!("UPDATE saml_jit.{table} SET on_login = '{hook}'"),
                    &[],
                )
                .unwrap_err();
            let db = err.as_db_error().unwrap();
            assert_eq!(db.code().code(), "42P13", "{hook}: {db:?}");
            assert!(db.message().contains(says), "{hook}: {}", db.message());
        }
    }
    // A function that does not exist is refused by the regprocedure type.
    let err = c
        .execute(
            "UPDATE saml_jit.identity_provider SET on_login = 'app.nothing(jsonb)'",
            &[],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42883");
    // Only the extension owner may set a hook (an administrator role with
    // UPDATE on the table may not).
    c.batch_execute(
        "GRANT USAGE ON SCHEMA saml_jit TO it_saas_other;
         GRANT UPDATE ON saml_jit.identity_provider TO it_saas_other;
         GRANT SELECT ON saml_jit.identity_provider TO it_saas_other;
         SET ROLE it_saas_other",
    )
    .unwrap();
    let err = c
        .execute(
            "UPDATE saml_jit.identity_provider SET on_login = 'app.on_login(jsonb)'",
            &[],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    c.batch_execute(
        "RESET ROLE;
         REVOKE ALL ON saml_jit.identity_provider FROM it_saas_other;
         REVOKE ALL ON SCHEMA saml_jit FROM it_saas_other",
    )
    .unwrap();

    // What changes after configuration is caught at login: a dropped hook,
    // and one given to another owner (who could then replace its body).
    c.batch_execute(
        "CREATE FUNCTION app.dropped(event jsonb) RETURNS void LANGUAGE sql AS $$ SELECT $$;
         UPDATE saml_jit.identity_provider SET on_login = 'app.dropped(jsonb)';
         DROP FUNCTION app.dropped(jsonb);",
    )
    .unwrap();
    let detail = assert_rejected(
        login(&mut c, &mint_one(person("u1", "u1@example.com", &[])), None),
        "provisioning_refused",
    );
    assert!(detail.contains("does not exist"), "{detail}");
    c.batch_execute(
        "UPDATE saml_jit.identity_provider SET on_login = 'app.on_login(jsonb)';
         ALTER FUNCTION app.on_login(jsonb) OWNER TO it_saas_other;",
    )
    .unwrap();
    let detail = assert_rejected(
        login(&mut c, &mint_one(person("u2", "u2@example.com", &[])), None),
        "provisioning_refused",
    );
    assert!(detail.contains("owned by it_saas_other"), "{detail}");
    assert_eq!(count(&mut c, "saml_jit.users"), 0);
    c.batch_execute("ALTER FUNCTION app.on_login(jsonb) OWNER TO postgres; DROP FUNCTION app.foreign_owner(jsonb)")
        .unwrap();
}

#[test]
fn cancel_and_timeout_inside_a_hook_are_not_turned_into_refusals() {
    let mut c = saas_db("it_saas_hook_timeout");
    c.batch_execute(
        "CREATE FUNCTION app.slow(event jsonb) RETURNS void LANGUAGE sql AS $$ SELECT pg_sleep(30) $$;
         UPDATE saml_jit.identity_provider SET on_login = 'app.slow(jsonb)';
         SET statement_timeout = '300ms'",
    )
    .unwrap();
    let err = c
        .query_one(
            "SELECT * FROM saml_jit_login($1)",
            &[&mint_one(person("slow", "slow@example.com", &[]))],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "57014", "{err:?}");
    c.batch_execute("RESET statement_timeout").unwrap();
    assert_eq!(count(&mut c, "saml_jit.users"), 0);
}

#[test]
fn thirty_two_concurrent_first_logins_make_one_account() {
    let mut c = saas_db("it_saas_concurrent");
    c.batch_execute("UPDATE saml_jit.identity_provider SET on_login = 'app.on_login(jsonb)'")
        .unwrap();
    let specs: Vec<Value> = (0..32)
        .map(|_| person("newbie", "newbie@example.com", &["admins"]))
        .collect();
    let responses = mint(&specs);
    let barrier = Arc::new(Barrier::new(responses.len()));
    let handles: Vec<_> = responses
        .into_iter()
        .map(|response| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut c =
                    Client::connect(&dsn_for("it_saas_concurrent", "postgres"), NoTls).unwrap();
                barrier.wait();
                login(&mut c, &response, None).map(|l| l.user_id)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let errors: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(count(&mut c, "app.accounts"), 1);
    assert_eq!(count(&mut c, "app.memberships"), 1);
    assert_eq!(count(&mut c, "saml_jit.users"), 1);
    assert_eq!(
        count(&mut c, "saml_jit.session"),
        32,
        "one session per login"
    );
    assert_eq!(
        count(&mut c, "app.events"),
        32,
        "the hook ran for every login"
    );
}

#[test]
fn email_domains_decide_what_an_idp_may_vouch_for() {
    let mut c = saas_db("it_saas_domains");
    // Stored canonical; mistakes refused when written.
    c.batch_execute("UPDATE saml_jit.identity_provider SET email_domains = '{Example.COM., *.Bücher.de, example.com}'")
        .unwrap();
    assert_eq!(
        one::<Vec<String>>(
            &mut c,
            "SELECT email_domains FROM saml_jit.identity_provider"
        ),
        vec!["example.com", "*.xn--bcher-kva.de"]
    );
    for bad in [
        "{com}",
        "{*.com}",
        "{a@example.com}",
        "{\"exa mple.com\"}",
        "{}",
        "{NULL}",
        "{a.*.example.com}",
    ] {
        let err = c
            .execute(
                &format!("UPDATE saml_jit.identity_provider SET email_domains = '{bad}'"),
                &[],
            )
            .unwrap_err();
        assert!(
            ["22023", "23514"].contains(&sqlstate(&err).as_str()),
            "{bad}: {err:?}"
        );
    }
    let cases = [
        ("ok1", "ada@example.com", true),
        ("ok2", "ADA@EXAMPLE.COM", true),
        ("ok3", "ada@example.com.", true),
        ("ok4", "ada@shop.bücher.de", true),
        ("ok5", "ada@shop.xn--bcher-kva.de", true),
        ("no1", "ada@sub.example.com", false),
        ("no2", "ada@evil-example.com", false),
        ("no3", "ada@example.com.evil.org", false),
        ("no4", "ada@bücher.de", false),
        ("no5", "ada.example.com", false),
        ("no6", "ada@example.com@evil.org", false),
        ("no7", "ada@ｅｘａｍｐｌｅ.com", false),
    ];
    let responses = mint(
        &cases
            .iter()
            .map(|(u, e, _)| person(u, e, &[]))
            .collect::<Vec<_>>(),
    );
    for ((user, email, allowed), response) in cases.iter().zip(responses) {
        let result = login(&mut c, &response, None);
        if *allowed {
            let l = result.unwrap_or_else(|r| panic!("{email}: {r:?}"));
            assert!(l.email_verified, "{email}");
        } else {
            let detail = assert_rejected(result, "email_domain_not_allowed");
            assert!(
                detail.contains("example.com, *.xn--bcher-kva.de"),
                "{email}: {detail}"
            );
            assert_eq!(
                one::<i64>(
                    &mut c,
                    &format!("SELECT count(*) FROM saml_jit.users WHERE subject = '{user}'")
                ),
                0
            );
        }
    }
    // No e-mail at all while email_domains is set: refused.
    let mut none = spec("nomail");
    none["attributes"].as_object_mut().unwrap().remove("mail");
    assert_rejected(
        login(&mut c, &mint_one(none), None),
        "email_domain_not_allowed",
    );
    // Without email_domains nothing is verified, nothing refused.
    c.batch_execute("UPDATE saml_jit.identity_provider SET email_domains = NULL")
        .unwrap();
    let l = login(
        &mut c,
        &mint_one(person("any", "any@anywhere.example", &[])),
        None,
    )
    .unwrap();
    assert!(!l.email_verified);
}

#[test]
fn a_second_customers_idp_cannot_take_over_the_first_customers_account() {
    let mut c = saas_db("it_saas_takeover");
    c.batch_execute(&format!(
        "SELECT saml_jit_add_idp('https://globex.test/idp', $cert${}$cert$);
         UPDATE saml_jit.identity_provider SET on_login = 'app.on_login(jsonb)';
         UPDATE saml_jit.identity_provider SET email_domains = '{{example.com}}' WHERE entity_id = '{IDP}';
         UPDATE saml_jit.identity_provider SET email_domains = '{{globex.test}}' WHERE entity_id = 'https://globex.test/idp';
         INSERT INTO app.accounts (email, invited) VALUES ('ceo@example.com', true);",
        read_fixture("demo-idp.crt")
    ))
    .unwrap();
    // Globex's IdP (here signing with the same test key) asserts an Acme e-mail.
    let mut globex = person("mallory", "ceo@example.com", &["admins"]);
    globex["idp"] = json!("https://globex.test/idp");
    assert_rejected(
        login(&mut c, &mint_one(globex), None),
        "email_domain_not_allowed",
    );
    assert_eq!(
        one::<Option<String>>(
            &mut c,
            "SELECT saml_user::text FROM app.accounts WHERE email = 'ceo@example.com'"
        ),
        None,
        "the invited account is untouched"
    );
    assert_eq!(count(&mut c, "app.memberships"), 0);
    // Without email_domains on Globex, the e-mail is not verified: the hook
    // creates a separate account instead of linking (and the unique e-mail
    // of the application refuses it, so nothing is linked either way).
    c.batch_execute("UPDATE saml_jit.identity_provider SET email_domains = NULL WHERE entity_id = 'https://globex.test/idp'")
        .unwrap();
    let mut globex = person("mallory", "ceo@example.com", &["admins"]);
    globex["idp"] = json!("https://globex.test/idp");
    assert_rejected(
        login(&mut c, &mint_one(globex), None),
        "provisioning_refused",
    );
    assert_eq!(
        one::<Option<String>>(
            &mut c,
            "SELECT saml_user::text FROM app.accounts WHERE email = 'ceo@example.com'"
        ),
        None
    );
    // Acme's own IdP links it.
    let ceo = login(
        &mut c,
        &mint_one(person("ceo", "ceo@example.com", &[])),
        None,
    )
    .unwrap();
    assert_eq!(
        one::<Option<String>>(
            &mut c,
            "SELECT saml_user::text FROM app.accounts WHERE email = 'ceo@example.com'"
        ),
        Some(ceo.user_id)
    );
}

#[test]
fn required_groups_admit_only_entitled_users() {
    let mut c = saas_db("it_saas_groups");
    c.batch_execute(
        "UPDATE saml_jit.identity_provider SET required_groups = '{app-users, admins}';
         INSERT INTO saml_jit.group_mapping (value, group_name) VALUES ('CN=App Users,OU=Groups', 'app-users');",
    )
    .unwrap();
    for bad in ["{}", "{\"\"}", "{\" \"}", "{NULL}"] {
        let err = c
            .execute(
                &format!("UPDATE saml_jit.identity_provider SET required_groups = '{bad}'"),
                &[],
            )
            .unwrap_err();
        assert!(
            ["22023", "23514"].contains(&sqlstate(&err).as_str()),
            "{bad}: {err:?}"
        );
    }
    // Entitled after group mapping.
    login(
        &mut c,
        &mint_one(person("in", "in@example.com", &["CN=App Users,OU=Groups"])),
        None,
    )
    .unwrap();
    let detail = assert_rejected(
        login(
            &mut c,
            &mint_one(person("out", "out@example.com", &["staff", "App-Users"])),
            None,
        ),
        "not_entitled",
    );
    assert!(
        detail.contains("[\"app-users\", \"admins\"]")
            && detail.contains("[\"staff\", \"App-Users\"]"),
        "{detail}"
    );
    assert_rejected(
        login(
            &mut c,
            &mint_one(person("none", "none@example.com", &[])),
            None,
        ),
        "not_entitled",
    );
    assert_eq!(count(&mut c, "saml_jit.users"), 1);
    // A refusal rolls back its replay row with everything else: the same
    // response is refused for the same reason again.
    let response = mint_one(person("out2", "out2@example.com", &["staff"]));
    assert_rejected(login(&mut c, &response, None), "not_entitled");
    assert_rejected(login(&mut c, &response, None), "not_entitled");
}

#[test]
fn sessions_end_with_logout_disable_expiry_and_idp_session_end() {
    let mut c = saas_db("it_saas_sessions");
    let active = |c: &mut Client, session: &str| -> bool {
        c.query_one(
            "SELECT saml_jit_session_active($1::text::uuid)",
            &[&session],
        )
        .unwrap()
        .get(0)
    };
    let mut s = person("sam", "sam@example.com", &[]);
    s["session_not_on_or_after"] = json!("2100-01-01T00:00:00Z");
    let first = login(&mut c, &mint_one(s), None).unwrap();
    let row = c
        .query_one(
            "SELECT s.user_id::text, s.session_index IS NOT NULL, s.name_id, s.not_on_or_after = '2100-01-01T00:00:00Z',
                    (SELECT detail ->> 'session_id' FROM saml_jit.audit_log WHERE event = 'login')
               FROM saml_jit.session s WHERE s.id = $1::text::uuid",
            &[&first.session_id],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), first.user_id);
    assert!(row.get::<_, bool>(1), "SessionIndex recorded");
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("sam"));
    assert_eq!(
        row.get::<_, Option<bool>>(3),
        Some(true),
        "SessionNotOnOrAfter recorded"
    );
    assert_eq!(
        row.get::<_, Option<String>>(4),
        Some(first.session_id.clone()),
        "the login audit row names it"
    );
    assert!(active(&mut c, &first.session_id));
    assert!(
        !active(&mut c, "00000000-0000-4000-8000-000000000000"),
        "unknown session"
    );
    // Past the IdP's SessionNotOnOrAfter.
    c.batch_execute("SET saml_jit.now_override = '2100-01-01T00:00:01Z'")
        .unwrap();
    assert!(!active(&mut c, &first.session_id));
    c.batch_execute("RESET saml_jit.now_override").unwrap();
    // The application ends it (once).
    let second = login(
        &mut c,
        &mint_one(person("sam", "sam@example.com", &[])),
        None,
    )
    .unwrap();
    assert_ne!(second.session_id, first.session_id);
    assert!(one::<bool>(
        &mut c,
        &format!("SELECT saml_jit_end_session('{}')", second.session_id)
    ));
    assert!(!one::<bool>(
        &mut c,
        &format!("SELECT saml_jit_end_session('{}')", second.session_id)
    ));
    assert!(!active(&mut c, &second.session_id));
    assert_eq!(
        one::<i64>(
            &mut c,
            "SELECT count(*) FROM saml_jit.audit_log WHERE event = 'logout'"
        ),
        1
    );
    // Disabling the user ends its sessions, and enabling does not revive them.
    let third = login(
        &mut c,
        &mint_one(person("sam", "sam@example.com", &[])),
        None,
    )
    .unwrap();
    assert!(active(&mut c, &third.session_id));
    c.batch_execute(&format!(
        "SELECT saml_jit_disable_users('{IDP}', '{{sam}}')"
    ))
    .unwrap();
    assert!(!active(&mut c, &third.session_id));
    c.batch_execute(&format!("SELECT saml_jit_enable_users('{IDP}', '{{sam}}')"))
        .unwrap();
    assert!(!active(&mut c, &third.session_id));
    assert_eq!(
        one::<String>(
            &mut c,
            &format!(
                "SELECT ended_by FROM saml_jit.session WHERE id = '{}'",
                third.session_id
            )
        ),
        "user_disabled"
    );
    // Expiry: past expires_at the session is over even before the scheduled
    // run, and the run ends it.
    c.batch_execute("UPDATE saml_jit.identity_provider SET account_ttl = '1 day'")
        .unwrap();
    let fourth = login(
        &mut c,
        &mint_one(person("sam", "sam@example.com", &[])),
        None,
    )
    .unwrap();
    assert!(active(&mut c, &fourth.session_id));
    // (A long session retention keeps the ended row for the check below:
    // the scheduled run also purges.)
    c.batch_execute("SET saml_jit.now_override = '2099-01-01T00:00:00Z'; SET saml_jit.session_retention = '1000 years'")
        .unwrap();
    assert!(!active(&mut c, &fourth.session_id));
    assert_eq!(
        one::<i32>(&mut c, "SELECT saml_jit_deprovision_expired()"),
        1
    );
    c.batch_execute("RESET saml_jit.now_override").unwrap();
    assert_eq!(
        one::<String>(
            &mut c,
            &format!(
                "SELECT ended_by FROM saml_jit.session WHERE id = '{}'",
                fourth.session_id
            )
        ),
        "user_expired"
    );
    // A disabled IdP's sessions are no longer active.
    let fifth = login(
        &mut c,
        &mint_one(person("sam", "sam@example.com", &[])),
        None,
    )
    .unwrap();
    c.batch_execute("UPDATE saml_jit.identity_provider SET enabled = false")
        .unwrap();
    assert!(!active(&mut c, &fifth.session_id));
}

#[test]
fn relay_state_comes_from_the_answered_request() {
    let mut c = saas_db("it_saas_relay");
    c.batch_execute(
        "UPDATE saml_jit.identity_provider SET sso_url_redirect = 'https://idp.test.example/sso'",
    )
    .unwrap();
    let request: String = c
        .query_one(
            "SELECT request_id FROM saml_jit_authn_request($1, '/projects/42?tab=billing')",
            &[&IDP],
        )
        .unwrap()
        .get(0);
    let mut answering = person("rs", "rs@example.com", &[]);
    answering["in_response_to"] = json!(request);
    let l = login(&mut c, &mint_one(answering), None).unwrap();
    assert_eq!(l.relay_state.as_deref(), Some("/projects/42?tab=billing"));
    // IdP-initiated: no request, no relay state.
    let l = login(&mut c, &mint_one(person("rs", "rs@example.com", &[])), None).unwrap();
    assert_eq!(l.relay_state, None);
}

#[test]
fn explain_shows_the_hook_and_the_domain_and_entitlement_verdicts() {
    let mut c = saas_db("it_saas_explain");
    c.batch_execute(
        "UPDATE saml_jit.identity_provider SET on_login = 'app.on_login(jsonb)',
                email_domains = '{example.com}', required_groups = '{admins}'",
    )
    .unwrap();
    let rows = |c: &mut Client, response: &str| -> Vec<(String, String, String)> {
        c.query(
            "SELECT step, outcome, detail FROM saml_jit_explain($1)",
            &[&response],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
    };
    let step = |rows: &[(String, String, String)], name: &str| -> (String, String) {
        let r = rows
            .iter()
            .find(|r| r.0 == name)
            .unwrap_or_else(|| panic!("no {name} row: {rows:?}"));
        (r.1.clone(), r.2.clone())
    };
    let good = rows(&mut c, &mint_one(person("x", "x@example.com", &["admins"])));
    assert_eq!(step(&good, "email_domain").0, "pass");
    assert_eq!(step(&good, "entitlement").0, "pass");
    assert_eq!(
        step(&good, "hook"),
        (
            "pass".into(),
            "would call app.on_login(jsonb) (not called by explain: its verdict is unknown here)"
                .into()
        )
    );
    assert_eq!(step(&good, "result").0, "accept");
    let bad = rows(&mut c, &mint_one(person("y", "y@evil.example", &["staff"])));
    assert_eq!(
        step(&bad, "email_domain").0,
        "fail: email_domain_not_allowed"
    );
    assert_eq!(step(&bad, "entitlement").0, "fail: not_entitled");
    assert_eq!(step(&bad, "result").0, "reject: email_domain_not_allowed");
    assert_eq!(
        count(&mut c, "app.events"),
        0,
        "explain never calls the hook"
    );
    assert_eq!(count(&mut c, "saml_jit.users"), 0);
}

/// Every new reason reaches saml_jit.audit_log through the audit writer
/// (the test cluster's saml_jit.audit_database is it_audit).
#[test]
fn every_new_reason_is_audited() {
    let mut c = fresh_database("it_audit");
    trust_demo_idp(&mut c);
    c.batch_execute(APP_SCHEMA).unwrap();
    c.batch_execute(
        "UPDATE saml_jit.identity_provider SET on_login = 'app.on_login(jsonb)',
                email_domains = '{example.com}', required_groups = '{admins}'",
    )
    .unwrap();
    let responses = mint(&[
        person("d1", "d1@evil.example", &["admins"]),
        person("g1", "g1@example.com", &["staff"]),
        person("h1", "suspended@example.com", &["admins"]),
    ]);
    for (response, reason) in responses.iter().zip([
        "email_domain_not_allowed",
        "not_entitled",
        "provisioning_refused",
    ]) {
        assert_rejected(login(&mut c, response, None), reason);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let sql = "SELECT count(*) FROM saml_jit.audit_log WHERE event = 'rejected'
                  AND reason IN ('email_domain_not_allowed', 'not_entitled', 'provisioning_refused')";
    while one::<i64>(&mut c, sql) < 3 && std::time::Instant::now() < deadline {
        thread::sleep(std::time::Duration::from_millis(100));
    }
    let rows: Vec<(String, String, String)> = c
        .query(
            "SELECT reason, subject, detail ->> 'detail' FROM saml_jit.audit_log
              WHERE event = 'rejected' ORDER BY reason",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str()),
        ("email_domain_not_allowed", "d1")
    );
    assert_eq!(
        (rows[1].0.as_str(), rows[1].1.as_str()),
        ("not_entitled", "g1")
    );
    assert_eq!(
        (rows[2].0.as_str(), rows[2].1.as_str(), rows[2].2.as_str()),
        (
            "provisioning_refused",
            "h1",
            "organization suspended: contact billing"
        )
    );
}
