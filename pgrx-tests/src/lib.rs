//! Helpers shared by the integration tests: a real PostgreSQL server started
//! by `scripts/test` (its libpq DSN in `SAML_JIT_TEST_DSN`), one fresh database
//! per test so tests can run in parallel without seeing each other.

use std::path::PathBuf;

pub use postgres::{Client, NoTls};

/// The DSN of the test cluster; the tests are meant to run through scripts/test.
pub fn dsn() -> String {
    std::env::var("SAML_JIT_TEST_DSN").unwrap_or_else(|_| {
        panic!("SAML_JIT_TEST_DSN is not set: run the integration tests through scripts/test")
    })
}

/// A DSN for `database` as `user` on the test cluster.
pub fn dsn_for(database: &str, user: &str) -> String {
    format!("{} dbname={database} user={user}", dsn())
}

/// Creates (or recreates) database `name` with the extension installed and
/// returns a superuser connection to it.
pub fn fresh_database(name: &str) -> Client {
    let mut admin = Client::connect(&dsn(), NoTls).expect("connect to the test cluster");
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .expect("drop old test database");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create test database");
    let mut client = Client::connect(&dsn_for(name, "postgres"), NoTls).expect("connect");
    client
        .batch_execute("CREATE EXTENSION saml_jit")
        .expect("CREATE EXTENSION saml_jit");
    client
}

/// The SQLSTATE code of a failed statement ("" when the error has none).
pub fn sqlstate(err: &postgres::Error) -> String {
    err.code().map(|c| c.code().to_string()).unwrap_or_default()
}

/// Files of this crate (fixtures).
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// A corpus of `../shared` beside the checkout (`conformance`, `interop`), if
/// present. Tests that need it are marked ignored by build.rs when it is not.
pub fn shared_dir(corpus: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared")
        .join(corpus);
    dir.join("cases.json").is_file().then_some(dir)
}

/// The shared conformance corpus beside the checkout, if present.
pub fn conformance_dir() -> Option<PathBuf> {
    shared_dir("conformance")
}

// ---------------------------------------------------------------------------
// A trusted IdP, an SP, and responses minted by pysaml2 acting as that IdP.

use base64::Engine;
use serde_json::{json, Value};

pub const IDP: &str = "https://idp.test.example/";
pub const SP: &str = "https://app.test.example/sp";
pub const ACS: &str = "https://app.test.example/acs";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub fn read_fixture(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Registers SP and ACS and trusts IDP with the demo certificate.
pub fn trust_demo_idp(client: &mut Client) {
    client
        .execute("SELECT saml_jit_add_sp($1, $2)", &[&SP, &ACS])
        .unwrap();
    client
        .execute(
            "SELECT saml_jit_add_idp($1, $2)",
            &[&IDP, &read_fixture("demo-idp.crt")],
        )
        .unwrap();
}

/// Installs the test SP key pair (fixtures sp.key / sp.crt) for SP.
pub fn install_sp_key(client: &mut Client) {
    client
        .execute(
            "SELECT saml_jit_set_sp_key($1, $2, $3)",
            &[&SP, &read_fixture("sp.key"), &read_fixture("sp.crt")],
        )
        .unwrap();
}

/// The default minting spec: the demo IdP, an assertion signed with RSA-SHA256.
pub fn spec(user: &str) -> Value {
    json!({
        "idp": IDP, "sp": SP, "acs": ACS, "user": user,
        "key": fixture("demo-idp.key"), "cert": fixture("demo-idp.crt"),
        "attributes": {"mail": [format!("{user}@example.com")], "givenName": ["Ada"], "sn": ["Lovelace"],
                       "title": ["Analyst"]},
        "sign_response": false, "sign_assertion": true,
        "sign_alg": "rsa-sha256", "digest_alg": "sha256", "in_response_to": null
    })
}

/// Mints one response per spec with pysaml2 (tests/idp/pysaml2_idp.py).
pub fn mint(specs: &[Value]) -> Vec<String> {
    try_mint(specs).unwrap_or_else(|e| panic!("pysaml2 failed: {e}"))
}

/// Like `mint`, but pysaml2 refusing (a request it will not answer) is Err
/// with its error output.
pub fn try_mint(specs: &[Value]) -> Result<Vec<String>, String> {
    Ok(try_pysaml2(specs)?
        .into_iter()
        .map(|v| v.as_str().expect("a minted response").to_string())
        .collect())
}

/// Runs one pysaml2 operation (spec "op": metadata, logout_request,
/// answer_logout, check_logout_response; see idp/pysaml2_idp.py).
pub fn pysaml2(spec: Value) -> Value {
    try_pysaml2(&[spec])
        .unwrap_or_else(|e| panic!("pysaml2 failed: {e}"))
        .pop()
        .unwrap()
}

/// Runs pysaml2 on the specs; its refusal is Err with its error output.
pub fn try_pysaml2(specs: &[Value]) -> Result<Vec<Value>, String> {
    use std::io::Write;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = dir.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup",
        python.display()
    );
    let mut child = std::process::Command::new(python)
        .arg(dir.join("idp/pysaml2_idp.py"))
        .env("PYTHONWARNINGS", "ignore")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start pysaml2 IdP");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(specs).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).expect("pysaml2 output"))
}

pub fn mint_one(spec: Value) -> String {
    mint(&[spec]).pop().unwrap()
}

pub fn to_xml(response: &str) -> String {
    String::from_utf8(B64.decode(response).unwrap()).unwrap()
}

pub fn to_response(xml: &str) -> String {
    B64.encode(xml)
}

/// What saml_jit_login returned.
#[derive(Debug)]
pub struct Login {
    pub user_id: String,
    pub subject: String,
    pub name_id: Option<String>,
    pub email: Option<String>,
    pub groups: Vec<String>,
    pub attributes: Value,
    pub action: String,
    pub email_verified: bool,
    pub session_id: String,
    pub relay_state: Option<String>,
}

/// A refused login: SQLSTATE, the reason code, the DETAIL.
#[derive(Debug)]
pub struct Refusal {
    pub sqlstate: String,
    pub reason: String,
    pub detail: String,
}

pub fn login(
    client: &mut Client,
    response: &str,
    in_response_to: Option<&str>,
) -> Result<Login, Refusal> {
    client
        .query_one(
            "SELECT user_id::text, subject, name_id, email, groups, attributes::text, action,
                    email_verified, session_id::text, relay_state
               FROM saml_jit_login($1, in_response_to => $2)",
            &[&response, &in_response_to],
        )
        .map(|row| Login {
            user_id: row.get(0),
            subject: row.get(1),
            name_id: row.get(2),
            email: row.get(3),
            groups: row.get(4),
            attributes: serde_json::from_str(row.get::<_, &str>(5)).unwrap(),
            action: row.get(6),
            email_verified: row.get(7),
            session_id: row.get(8),
            relay_state: row.get(9),
        })
        .map_err(|e| {
            let db = e
                .as_db_error()
                .unwrap_or_else(|| panic!("not a database error: {e}"));
            Refusal {
                sqlstate: db.code().code().to_string(),
                reason: db
                    .message()
                    .strip_prefix("SAML response rejected: ")
                    .unwrap_or(db.message())
                    .to_string(),
                detail: db.detail().unwrap_or_default().to_string(),
            }
        })
}

/// Asserts a 28000 rejection with `reason`; returns the DETAIL.
#[track_caller]
pub fn assert_rejected(result: Result<Login, Refusal>, reason: &str) -> String {
    match result {
        Ok(l) => panic!("expected rejection {reason}, but the login succeeded: {l:?}"),
        Err(r) => {
            assert_eq!(
                (r.sqlstate.as_str(), r.reason.as_str()),
                ("28000", reason),
                "detail: {}",
                r.detail
            );
            assert!(!r.detail.is_empty(), "a rejection must carry a DETAIL");
            r.detail
        }
    }
}

/// Signs `xml` again with the demo IdP key (the xmlsec1 tool recomputes the
/// digest and SignatureValue of the document's first ds:Signature): how the
/// tests mint a genuinely signed response of a shape pysaml2 would not make.
pub fn resign(xml: &str) -> String {
    let dir = std::env::temp_dir().join(format!(
        "saml_jit_resign_{}_{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.xml");
    let output = dir.join("out.xml");
    std::fs::write(&input, xml).unwrap();
    let key = format!(
        "{},{}",
        fixture("demo-idp.key").display(),
        fixture("demo-idp.crt").display()
    );
    let status = std::process::Command::new("xmlsec1")
        .args(["--sign", "--privkey-pem", &key])
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
        ])
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:protocol:Response",
        ])
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:protocol:LogoutRequest",
        ])
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:protocol:LogoutResponse",
        ])
        .arg("--output")
        .arg(&output)
        .arg(&input)
        .status()
        .expect("run xmlsec1");
    assert!(status.success(), "xmlsec1 --sign failed");
    let signed = std::fs::read_to_string(&output).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    to_response(&signed)
}

/// `xml` with the attribute `name` (and its value) removed from the first
/// element whose start tag contains `element`.
pub fn drop_attribute(xml: &str, element: &str, name: &str) -> String {
    let tag = xml.find(element).unwrap_or_else(|| panic!("no {element}"));
    let tag_end = tag + xml[tag..].find('>').unwrap();
    let at = tag
        + xml[tag..tag_end]
            .find(&format!(" {name}="))
            .unwrap_or_else(|| panic!("{element} has no {name}"));
    let quote_open = at + name.len() + 2;
    let quote = &xml[quote_open..quote_open + 1];
    let close = quote_open + 1 + xml[quote_open + 1..].find(quote).unwrap();
    format!("{}{}", &xml[..at], &xml[close + 1..])
}

/// `xml` without the first element named `local` (any prefix), children included.
pub fn drop_element(xml: &str, local: &str) -> String {
    let start = find_start_tag(xml, local).unwrap_or_else(|| panic!("no {local}"));
    let prefix_end = xml[start + 1..].find(local).unwrap() + start + 1;
    let qname = &xml[start + 1..prefix_end + local.len()];
    let close = format!("</{qname}>");
    let end = xml[start..].find(&close).unwrap() + start + close.len();
    format!("{}{}", &xml[..start], &xml[end..])
}

/// Where the first start tag of an element named `local` (any prefix) begins.
pub fn find_start_tag(xml: &str, local: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = xml[from..].find(local) {
        let at = from + i;
        let after = xml.as_bytes().get(at + local.len()).copied();
        let lt = xml[..at].rfind('<')?;
        let name = &xml[lt + 1..at];
        if !name.starts_with('/')
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || c == ':' || c == '_')
            && (name.is_empty() || name.ends_with(':'))
            && matches!(after, Some(b' ' | b'>' | b'/'))
        {
            return Some(lt);
        }
        from = at + local.len();
    }
    None
}
