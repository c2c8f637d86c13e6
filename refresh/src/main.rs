//! saml-jit-refresh-metadata: fetches the metadata of every IdP that has a
//! `metadata_url` and is due (its cacheDuration has passed, its validUntil is
//! near, or the last refresh failed), and hands each document, or the reason
//! none could be fetched, to `saml_jit_refresh_idp_metadata` in the database.
//! Parsing and import stay in the database; this program only fetches, with
//! hard limits: HTTPS only (unless --allow-http, for tests), 10 seconds and
//! 1 MB per document, at most 3 redirects.
//!
//! Run it from cron or a systemd timer (README, "Metadata refresh").

use std::process::ExitCode;
use std::time::Duration;

use postgres::{Client, NoTls};
use ureq::tls::{Certificate, RootCerts, TlsConfig};

const USAGE: &str = "\
usage: saml-jit-refresh-metadata [options]

Fetches each due IdP's metadata_url and imports it (saml_jit_refresh_idp_metadata).

options:
  --dsn DSN          connection string, e.g. 'host=/run/postgresql dbname=app user=saml_refresh'
                     (default: the SAML_JIT_DSN environment variable)
  --idp ENTITY_ID    only this IdP (may be repeated)
  --force            also IdPs whose copy is still within its cacheDuration
  --ca-file FILE     trust the CA certificates in this PEM file instead of the system's
  --allow-http       accept http:// URLs (for tests; never in production)
  --timeout SECONDS  per document, default 10
  --max-bytes N      per document, default 1048576

exit status: 0 every due IdP refreshed, 1 some refresh failed (recorded on the
IdP row), 2 usage or database error";

struct Options {
    dsn: String,
    idps: Vec<String>,
    force: bool,
    ca_file: Option<String>,
    allow_http: bool,
    timeout: Duration,
    max_bytes: u64,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut o = Options {
        dsn: std::env::var("SAML_JIT_DSN").unwrap_or_default(),
        idps: Vec::new(),
        force: false,
        ca_file: None,
        allow_http: false,
        timeout: Duration::from_secs(10),
        max_bytes: 1024 * 1024,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--dsn" => o.dsn = value("--dsn")?,
            "--idp" => o.idps.push(value("--idp")?),
            "--force" => o.force = true,
            "--ca-file" => o.ca_file = Some(value("--ca-file")?),
            "--allow-http" => o.allow_http = true,
            "--timeout" => {
                let v = value("--timeout")?;
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("--timeout {v:?} is not a number of seconds"))?;
                o.timeout = Duration::from_secs(secs.clamp(1, 300));
            }
            "--max-bytes" => {
                let v = value("--max-bytes")?;
                o.max_bytes = v
                    .parse()
                    .map_err(|_| format!("--max-bytes {v:?} is not a number"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if o.dsn.is_empty() {
        return Err("say which database: --dsn, or the SAML_JIT_DSN environment variable".into());
    }
    Ok(o)
}

/// The HTTP client: the limits above, and the trusted roots.
fn agent(o: &Options) -> Result<ureq::Agent, String> {
    let roots = match &o.ca_file {
        None => RootCerts::PlatformVerifier,
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| format!("--ca-file {path}: {e}"))?;
            let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(format!("--ca-file {path}: no certificate in it"));
            }
            RootCerts::new_with_certs(&certs)
        }
    };
    let config = ureq::Agent::config_builder()
        .https_only(!o.allow_http)
        .max_redirects(3)
        .timeout_global(Some(o.timeout))
        .http_status_as_error(false)
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .build();
    Ok(ureq::Agent::new_with_config(config))
}

/// The metadata document at `url`, or why there is none.
fn fetch(agent: &ureq::Agent, url: &str, o: &Options) -> Result<String, String> {
    let scheme_ok = url.starts_with("https://") || (o.allow_http && url.starts_with("http://"));
    if !scheme_ok {
        return Err(format!(
            "{url} is not an https:// URL (metadata is fetched over HTTPS only)"
        ));
    }
    let mut response = agent.get(url).call().map_err(|e| describe(e, o))?;
    let status = response.status();
    if status != 200 {
        return Err(format!("{url} answered HTTP {status}"));
    }
    response
        .body_mut()
        .with_config()
        .limit(o.max_bytes)
        .read_to_string()
        .map_err(|e| describe(e, o))
}

fn describe(e: ureq::Error, o: &Options) -> String {
    match e {
        ureq::Error::BodyExceedsLimit(_) => {
            format!("the metadata is larger than {} bytes", o.max_bytes)
        }
        ureq::Error::Timeout(_) => format!("no complete answer within {} s", o.timeout.as_secs()),
        ureq::Error::RequireHttpsOnly(url) => {
            format!("{url} is not an https:// URL (metadata is fetched over HTTPS only)")
        }
        other => other.to_string(),
    }
}

/// A database error as PostgreSQL worded it ("db error" says nothing).
fn db_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

const DUE: &str = "SELECT idp_entity_id, metadata_url FROM saml_jit_metadata_refresh_due($1, $2)";
const REFRESH: &str = "SELECT refreshed, certificates_added, certificates_deactivated,
                              next_refresh::text, error
                         FROM saml_jit_refresh_idp_metadata($1, $2, $3)";

fn run(o: &Options) -> Result<bool, String> {
    let agent = agent(o)?;
    let mut db = Client::connect(&o.dsn, NoTls)
        .map_err(|e| format!("cannot connect to the database: {}", db_message(&e)))?;
    let due = db
        .query(DUE, &[&o.force, &o.idps])
        .map_err(|e| format!("cannot list the IdPs to refresh: {}", db_message(&e)))?;
    let mut all_ok = true;
    for row in due {
        let (idp, url): (String, String) = (row.get(0), row.get(1));
        let (document, fetch_error) = match fetch(&agent, &url, o) {
            Ok(d) => (Some(d), None),
            Err(e) => (None, Some(e)),
        };
        let outcome = db
            .query_one(REFRESH, &[&idp, &document, &fetch_error])
            .map_err(|e| {
                format!(
                    "{idp}: the database refused the refresh: {}",
                    db_message(&e)
                )
            })?;
        let refreshed: bool = outcome.get(0);
        if refreshed {
            let next: Option<String> = outcome.get(3);
            println!(
                "{idp}: refreshed from {url} ({} certificate(s) added, {} deactivated; next refresh {})",
                outcome.get::<_, i32>(1),
                outcome.get::<_, i32>(2),
                next.as_deref().unwrap_or("at the next run")
            );
        } else {
            all_ok = false;
            let error: Option<String> = outcome.get(4);
            eprintln!(
                "{idp}: not refreshed from {url}: {} (recorded in saml_jit.identity_provider.metadata_refresh_error; its certificates are unchanged)",
                error.unwrap_or_default()
            );
        }
    }
    Ok(all_ok)
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("saml-jit-refresh-metadata: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("saml-jit-refresh-metadata: {e}");
            ExitCode::from(2)
        }
    }
}
