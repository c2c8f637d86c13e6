//! pg_dump keeps what users wrote (API.md): trust configuration, users, the
//! audit trail and the replay guard survive a dump and restore into a new
//! database, with identity counters intact.

use std::process::Command;

use saml_jit_integration::*;

fn dsn_parts() -> (String, String) {
    let dsn = dsn();
    let field = |k: &str| {
        dsn.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")).map(str::to_string))
            .unwrap_or_default()
    };
    (field("host"), field("port"))
}

#[test]
fn a_dump_restores_trust_users_audit_and_replay_guard() {
    let mut c = fresh_database("it_dump_src");
    trust_demo_idp(&mut c);
    c.execute(
        "INSERT INTO saml_jit.attribute_mapping (attribute, target) VALUES ('title', 'title')",
        &[],
    )
    .unwrap();
    let used = mint_one(spec("kept"));
    login(&mut c, &used, None).unwrap();
    let (host, port) = dsn_parts();
    let dump = std::env::temp_dir().join(format!("saml_jit_dump_{}.sql", std::process::id()));
    let status = Command::new("/usr/lib/postgresql/15/bin/pg_dump")
        .args(["-h", &host, "-p", &port, "-U", "postgres", "-f"])
        .arg(&dump)
        .arg("it_dump_src")
        .status()
        .unwrap();
    assert!(status.success(), "pg_dump");
    let mut admin = Client::connect(&dsn(), NoTls).unwrap();
    admin
        .batch_execute("DROP DATABASE IF EXISTS it_dump_dst WITH (FORCE)")
        .unwrap();
    admin.batch_execute("CREATE DATABASE it_dump_dst").unwrap();
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            &host,
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            "it_dump_dst",
            "-f",
        ])
        .arg(&dump)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&dump);
    assert!(
        out.status.success(),
        "restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut r = Client::connect(&dsn_for("it_dump_dst", "postgres"), NoTls).unwrap();
    let counts: Vec<i64> = [
        "saml_jit.service_provider",
        "saml_jit.identity_provider",
        "saml_jit.idp_certificate",
        "saml_jit.attribute_mapping",
        "saml_jit.users",
        "saml_jit.consumed_assertion",
    ]
    .iter()
    .map(|t| {
        r.query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .unwrap()
            .get(0)
    })
    .collect();
    assert_eq!(counts, [1, 1, 1, 1, 1, 1]);
    let audit: i64 = r
        .query_one("SELECT count(*) FROM saml_jit.audit_log", &[])
        .unwrap()
        .get(0);
    assert!(audit >= 2, "the audit trail survives");
    // The restored replay guard still refuses the used assertion...
    assert_rejected(login(&mut r, &used, None), "replay");
    // ...and the restored trust still accepts a new one, updating the same user.
    let l = login(&mut r, &mint_one(spec("kept")), None).unwrap();
    assert_eq!(l.action, "updated");
    // Identity counters continue after the restored rows.
    let id: i64 = r
        .query_one(
            "SELECT saml_jit_add_sp('https://second.example/sp', 'https://second.example/acs')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(id, 2);
}
