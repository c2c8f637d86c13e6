//! Every ```sql block of README.md, run in order by psql against the real
//! server in a fresh database `app`, with the psql variables the README names
//! bound to fixtures and to a response minted by pysaml2. A block that fails
//! fails the test with its text and psql's error, so the documentation cannot
//! drift from the product.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::json;

use saml_jit_integration::*;

const README_IDP: &str = "https://idp.acme.example/saml";
const README_SP: &str = "https://app.example.com/saml/metadata";
const README_ACS: &str = "https://app.example.com/saml/acs";

/// The ```sql blocks of a Markdown text, dedented to their fence.
fn sql_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match &mut current {
            None if trimmed == "```sql" => current = Some((indent, String::new())),
            None => {}
            Some(_) if trimmed == "```" => blocks.push(current.take().unwrap().1),
            Some((fence, text)) => {
                text.push_str(line.get(*fence..).unwrap_or(trimmed));
                text.push('\n');
            }
        }
    }
    assert!(current.is_none(), "README.md has an unclosed ```sql block");
    blocks
}

/// The responses the quick start and the data-model section log in with:
/// Acme's IdP, signed assertion.
fn acme_response() -> String {
    let mut s = spec("u-10815");
    s["idp"] = json!(README_IDP);
    s["sp"] = json!(README_SP);
    s["acs"] = json!(README_ACS);
    s["attributes"] = json!({
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": ["ada@acme.example"],
        "givenName": ["Ada"], "sn": ["Lovelace"], "displayName": ["Ada Lovelace"],
        "groups": ["Engineering", "Staff"]
    });
    mint_one(s)
}

/// The Single Logout section's IdP-initiated LogoutRequest: Acme's IdP
/// (pysaml2) signs u-10815 out, by HTTP-Redirect to the README's SLO URL;
/// the raw query string as the SLO endpoint receives it.
fn acme_logout_query() -> String {
    let mut s = spec("u-10815");
    s["idp"] = json!(README_IDP);
    s["sp"] = json!(README_SP);
    s["acs"] = json!(README_ACS);
    s["op"] = json!("logout_request");
    s["slo"] = json!("https://app.example.com/saml/slo");
    s["relay_state"] = json!("/");
    let url = pysaml2(s)["url"].as_str().unwrap().to_string();
    url.split_once('?').unwrap().1.to_string()
}

fn psql(database: &str, vars: &[(&str, String)], script: &str) -> Result<String, String> {
    let mut cmd = Command::new("psql");
    cmd.arg("-X")
        .arg("-v")
        .arg("ON_ERROR_STOP=1")
        .arg(dsn_for(database, "postgres"));
    for (name, value) in vars {
        cmd.arg("-v").arg(format!("{name}={value}"));
    }
    let mut child = cmd
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run psql (postgresql-client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

#[test]
fn every_sql_block_of_the_readme_runs() {
    let readme = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let blocks = sql_blocks(&std::fs::read_to_string(&readme).unwrap());
    assert!(blocks.len() >= 10, "found only {} sql blocks", blocks.len());

    // The database the README is written for, empty, and its role not yet made.
    let mut admin = Client::connect(&dsn(), NoTls).unwrap();
    for statement in [
        "DROP DATABASE IF EXISTS app WITH (FORCE)",
        "DROP ROLE IF EXISTS app_backend",
        "DROP ROLE IF EXISTS saml_refresh",
        "CREATE DATABASE app",
        "CREATE EXTENSION IF NOT EXISTS pg_cron",
        "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'saml_jit-deprovision'",
    ] {
        admin.batch_execute(statement).unwrap();
    }

    let vars = [
        ("idp_cert", read_fixture("demo-idp.crt")),
        ("next_idp_cert", read_fixture("other-idp.crt")),
        ("sp_key", read_fixture("sp.key")),
        ("sp_cert", read_fixture("sp.crt")),
        ("next_sp_key", read_fixture("other-idp.key")),
        ("next_sp_cert", read_fixture("other-idp.crt")),
        ("saml_response", acme_response()),
        ("next_saml_response", acme_response()),
        ("logout_saml_response", acme_response()),
        ("slo_query_string", acme_logout_query()),
        ("idp_metadata", read_fixture("metadata/okta.xml")),
        ("aggregate", read_fixture("metadata/shibboleth.xml")),
    ];
    for (i, block) in blocks.iter().enumerate() {
        if let Err(e) = psql("app", &vars, block) {
            panic!(
                "README sql block {} failed:\n{block}\n--- psql:\n{e}",
                i + 1
            );
        }
    }

    // What the blocks did, seen from outside.
    let mut app = Client::connect(&dsn_for("app", "postgres"), NoTls).unwrap();
    let user = app
        .query_one(
            "SELECT email, groups, status, expires_at IS NOT NULL
               FROM saml_jit.users WHERE subject = 'u-10815'",
            &[],
        )
        .expect("the quick start's login created the user");
    assert_eq!(
        user.get::<_, Option<String>>(0).as_deref(),
        Some("ada@acme.example")
    );
    let groups: Vec<String> = user.get(1);
    assert!(groups.contains(&"app:developer".to_string()), "{groups:?}");
    assert_eq!(
        user.get::<_, String>(2),
        "active",
        "disabled, then enabled again"
    );
    assert!(user.get::<_, bool>(3), "account_ttl gave an expiry");
    let events: Vec<String> = app
        .query("SELECT event FROM saml_jit.audit_log ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for event in ["login", "created", "disabled", "enabled"] {
        assert!(events.iter().any(|e| e == event), "{event} in {events:?}");
    }
    // The data-model section's hook linked the invited account.
    let account = app
        .query_one(
            "SELECT a.role, a.saml_user_id = u.id FROM public.accounts a, saml_jit.users u
              WHERE a.email = 'ada@acme.example' AND u.subject = 'u-10815'",
            &[],
        )
        .expect("one account for Ada");
    assert_eq!(
        (
            account.get::<_, String>(0).as_str(),
            account.get::<_, bool>(1)
        ),
        ("developer", true)
    );
    let logouts: i64 = app
        .query_one(
            "SELECT count(*) FROM saml_jit.audit_log WHERE event = 'logout'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        logouts, 3,
        "the sessions block ended one session; Single Logout: the IdP's request and ours"
    );
    let slo: Vec<String> = app
        .query(
            "SELECT detail ->> 'kind' FROM saml_jit.audit_log WHERE event = 'logout' ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .filter_map(|r| r.get(0))
        .collect();
    assert_eq!(slo, ["logout_request", "sp_logout_request"]);
    let outstanding: i64 = app
        .query_one(
            "SELECT count(*) FROM saml_jit.logout_request l JOIN saml_jit.session s ON s.id = l.session_id
              WHERE l.answered_at IS NULL AND s.ended_by = 'sp_logout'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        outstanding, 1,
        "the SP-initiated logout awaits the IdP's answer"
    );
    let keys: Vec<String> = app
        .query("SELECT state FROM saml_jit.sp_key ORDER BY state", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        keys,
        ["current"],
        "the README's rollover promoted and retired"
    );
    let idps: i64 = app
        .query_one("SELECT count(*) FROM saml_jit.identity_provider", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        idps, 3,
        "Acme by certificate, Okta and the university by metadata"
    );
    let job: String = admin
        .query_one(
            "SELECT database FROM cron.job WHERE jobname = 'saml_jit-deprovision'",
            &[],
        )
        .expect("the quick start scheduled the deprovisioning job")
        .get(0);
    assert_eq!(job, "app");
    admin
        .batch_execute(
            "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'saml_jit-deprovision'",
        )
        .unwrap();
}
