//! Metadata refresh: an IdP's metadata fetched again from its metadata_url
//! and imported with the usual rollover rules; what fails is recorded on the
//! IdP row and changes nothing else. `saml_jit_refresh_idp_metadata` is the
//! database side that the saml-jit-refresh-metadata command calls.

use serde_json::json;

use saml_jit_integration::*;

const KEYCLOAK: &str = "https://keycloak.example/realms/acme";

fn body(fixture_name: &str) -> String {
    read_fixture(fixture_name)
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect()
}

/// Keycloak's metadata shape with a cacheDuration, signing with `cert`.
fn keycloak_metadata(cert: &str) -> String {
    read_fixture("metadata/keycloak.xml")
        .replacen(
            "entityID=\"https://keycloak.example/realms/acme\"",
            "entityID=\"https://keycloak.example/realms/acme\" cacheDuration=\"PT6H\"",
            1,
        )
        .replace(&body("demo-idp.crt"), &body(cert))
}

fn active_certificates(c: &mut Client) -> Vec<String> {
    c.query(
        "SELECT fingerprint_sha256 FROM saml_jit.idp_certificate WHERE active ORDER BY id",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn keycloak_login(c: &mut Client, user: &str, key: &str) -> Result<Login, Refusal> {
    let mut s = spec(user);
    s["idp"] = json!(KEYCLOAK);
    s["key"] = json!(fixture(&format!("{key}.key")));
    s["cert"] = json!(fixture(&format!("{key}.crt")));
    login(c, &mint_one(s), None)
}

#[test]
fn a_refresh_rolls_the_signing_certificate_and_a_failure_changes_nothing() {
    let mut c = fresh_database("it_refresh_sql");
    c.execute("SELECT saml_jit_add_sp($1, $2)", &[&SP, &ACS])
        .unwrap();
    c.query(
        "SELECT * FROM saml_jit_import_idp_metadata($1)",
        &[&keycloak_metadata("demo-idp.crt")],
    )
    .unwrap();
    keycloak_login(&mut c, "before", "demo-idp").expect("signed by the current key");
    assert_rejected(
        keycloak_login(&mut c, "early", "other-idp"),
        "signature_invalid",
    );

    // The IdP rolled its key: the refreshed metadata lists the new one only.
    let row = c
        .query_one(
            "SELECT refreshed, certificates_added, certificates_deactivated,
                    next_refresh BETWEEN now() + interval '5 hours 59 minutes' AND now() + interval '6 hours 1 minute',
                    error
               FROM saml_jit_refresh_idp_metadata($1, $2)",
            &[&KEYCLOAK, &keycloak_metadata("other-idp.crt")],
        )
        .unwrap();
    assert_eq!(
        (
            row.get::<_, bool>(0),
            row.get::<_, i32>(1),
            row.get::<_, i32>(2),
            row.get::<_, bool>(3),
            row.get::<_, Option<String>>(4)
        ),
        (true, 1, 1, true, None),
        "cacheDuration PT6H sets the next refresh"
    );
    keycloak_login(&mut c, "after", "other-idp").expect("signed by the new key");
    assert_rejected(
        keycloak_login(&mut c, "stale", "demo-idp"),
        "signature_invalid",
    );
    let trusted = active_certificates(&mut c);

    // Garbage, another entity, expired metadata, a fetch that failed: each is
    // recorded, none changes the certificates.
    let expired = keycloak_metadata("demo-idp.crt").replacen(
        "cacheDuration=\"PT6H\"",
        "validUntil=\"2001-01-01T00:00:00Z\"",
        1,
    );
    let other_entity =
        keycloak_metadata("demo-idp.crt").replace(KEYCLOAK, "https://evil.example/idp");
    for (metadata, fetch_error, says) in [
        (
            Some("<html>502 Bad Gateway</html>"),
            None,
            "invalid IdP metadata",
        ),
        (Some(other_entity.as_str()), None, "no IdP with entityID"),
        (Some(expired.as_str()), None, "expired"),
        (None, Some("timed out after 10 s"), "timed out after 10 s"),
    ] {
        let row = c
            .query_one(
                "SELECT refreshed, error FROM saml_jit_refresh_idp_metadata($1, $2, $3)",
                &[&KEYCLOAK, &metadata, &fetch_error],
            )
            .unwrap();
        assert!(!row.get::<_, bool>(0), "{says}");
        let error: String = row.get(1);
        assert!(error.contains(says), "{says}: {error}");
        let recorded: Option<String> = c
            .query_one(
                "SELECT metadata_refresh_error FROM saml_jit.identity_provider WHERE entity_id = $1",
                &[&KEYCLOAK],
            )
            .unwrap()
            .get(0);
        assert_eq!(recorded.as_deref(), Some(error.as_str()));
        assert_eq!(active_certificates(&mut c), trusted, "{says}");
    }
    keycloak_login(&mut c, "still", "other-idp").expect("the certificates stayed");
    // A success clears the recorded error.
    c.query(
        "SELECT * FROM saml_jit_refresh_idp_metadata($1, $2)",
        &[&KEYCLOAK, &keycloak_metadata("other-idp.crt")],
    )
    .unwrap();
    let recorded: Option<String> = c
        .query_one(
            "SELECT metadata_refresh_error FROM saml_jit.identity_provider WHERE entity_id = $1",
            &[&KEYCLOAK],
        )
        .unwrap()
        .get(0);
    assert_eq!(recorded, None);
    let err = c
        .execute(
            "UPDATE saml_jit.identity_provider SET metadata_url = 'file:///etc/passwd'",
            &[],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23514", "only http(s) URLs");
}

/// A throwaway CA and a server certificate for 127.0.0.1 (openssl CLI).
fn make_ca(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let ok = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl")
            .success();
        assert!(ok, "openssl {args:?}");
    };
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=saml_jit test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ]);
}

/// The metadata server (pgrx-tests/idp/metadata_server.py) on its own port.
struct Server {
    child: std::process::Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &std::path::Path) -> Server {
    use std::io::BufRead;
    let manifest = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut child = std::process::Command::new(manifest.join(".venv/bin/python"))
        .arg(manifest.join("idp/metadata_server.py"))
        .arg(dir.join("www"))
        .arg(dir.join("server.crt"))
        .arg(dir.join("server.key"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the metadata server");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("the server's port");
    Server { child, port }
}

/// Runs the command; its exit code, stdout and stderr.
fn refresh_command(args: &[&str]) -> (i32, String, String) {
    let binary = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/debug/saml-jit-refresh-metadata");
    assert!(
        binary.exists(),
        "{} is missing: scripts/test builds it (cargo build -p saml_jit_refresh)",
        binary.display()
    );
    let out = std::process::Command::new(binary)
        .args(args)
        .env("SAML_JIT_DSN", dsn_for("it_refresh_cmd", "postgres"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_command_fetches_over_https_and_refuses_what_it_must() {
    let dir = std::env::temp_dir().join(format!("saml_jit_refresh_{}", std::process::id()));
    std::fs::create_dir_all(dir.join("www")).unwrap();
    make_ca(&dir);
    let www = dir.join("www");
    std::fs::write(www.join("keycloak.xml"), keycloak_metadata("demo-idp.crt")).unwrap();
    std::fs::write(
        www.join("garbage.xml"),
        "<html><body>Service Unavailable</body></html>",
    )
    .unwrap();
    std::fs::write(www.join("huge.xml"), " ".repeat(1024 * 1024 + 1)).unwrap();
    let server = serve(&dir);
    let base = format!("https://127.0.0.1:{}", server.port);
    let ca = dir.join("ca.crt").display().to_string();

    let mut c = fresh_database("it_refresh_cmd");
    c.execute("SELECT saml_jit_add_sp($1, $2)", &[&SP, &ACS])
        .unwrap();
    c.query(
        "SELECT * FROM saml_jit_import_idp_metadata($1)",
        &[&keycloak_metadata("demo-idp.crt")],
    )
    .unwrap();
    let set_url = |c: &mut Client, url: &str| {
        c.execute(
            "UPDATE saml_jit.identity_provider SET metadata_url = $1 WHERE entity_id = $2",
            &[&url, &KEYCLOAK],
        )
        .unwrap();
    };
    let recorded_error = |c: &mut Client| -> Option<String> {
        c.query_one(
            "SELECT metadata_refresh_error FROM saml_jit.identity_provider WHERE entity_id = $1",
            &[&KEYCLOAK],
        )
        .unwrap()
        .get(0)
    };
    set_url(&mut c, &format!("{base}/keycloak.xml"));

    // The IdP rolls its signing key and publishes new metadata.
    std::fs::write(www.join("keycloak.xml"), keycloak_metadata("other-idp.crt")).unwrap();
    let (code, out, err) = refresh_command(&["--ca-file", &ca]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("refreshed") && out.contains("1 certificate(s) added, 1 deactivated"),
        "{out}"
    );
    keycloak_login(&mut c, "after-refresh", "other-idp")
        .expect("the next login is signed by the new key");
    let trusted = active_certificates(&mut c);
    // Within its cacheDuration (PT6H) nothing is due.
    let (code, out, _) = refresh_command(&["--ca-file", &ca]);
    assert_eq!((code, out.as_str()), (0, ""));

    // Every way a fetch fails is recorded and changes nothing.
    let cases = [
        (
            format!("{base}/garbage.xml"),
            vec!["--timeout", "10"],
            "invalid IdP metadata",
        ),
        (
            format!("{base}/huge.xml"),
            vec![],
            "larger than 1048576 bytes",
        ),
        (format!("{base}/missing.xml"), vec![], "HTTP 404"),
        (format!("{base}/slow"), vec!["--timeout", "2"], "within 2 s"),
        (format!("{base}/redirect-to-http"), vec![], "https"),
        (
            format!("http://127.0.0.1:{}/keycloak.xml", server.port),
            vec![],
            "not an https:// URL",
        ),
    ];
    for (url, extra, says) in cases {
        set_url(&mut c, &url);
        let mut args = vec!["--ca-file", ca.as_str(), "--force"];
        args.extend(extra);
        let (code, out, err) = refresh_command(&args);
        assert_eq!(code, 1, "{url}: {out}{err}");
        let error = recorded_error(&mut c).unwrap_or_default();
        assert!(
            error.contains(says),
            "{url}: recorded {error:?}; stderr {err}"
        );
        assert_eq!(active_certificates(&mut c), trusted, "{url}");
    }
    // A server whose certificate the system does not trust.
    set_url(&mut c, &format!("{base}/keycloak.xml"));
    let (code, _, err) = refresh_command(&["--force"]);
    assert_eq!(code, 1, "{err}");
    assert!(!recorded_error(&mut c).unwrap_or_default().is_empty());
    assert_eq!(active_certificates(&mut c), trusted);
    keycloak_login(&mut c, "still", "other-idp").expect("the certificates stayed");
    // Back to a good document: the error is cleared.
    let (code, out, err) = refresh_command(&["--ca-file", &ca, "--force"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(recorded_error(&mut c), None);
    drop(server);
    std::fs::remove_dir_all(&dir).ok();
}
