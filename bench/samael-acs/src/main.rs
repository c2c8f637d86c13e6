//! The samael baseline: what a Rust application's ACS does today. samael
//! (with libxmlsec1) verifies the signature and validates the assertion, then
//! one transaction records the assertion ID against replay, upserts the user
//! and writes an audit row: the same work, on the same rows, as
//! bench/python3_saml_acs.py and saml_jit_login.
//!
//! usage: samael-acs POOL_TSV COUNT CLIENTS DSN
//! prints: logins tps p50_ms p99_ms

use std::time::{Duration, Instant};

use postgres::{Client, NoTls};
use samael::metadata::EntityDescriptor;
use samael::service_provider::{ServiceProvider, ServiceProviderBuilder};
use serde_json::{Map, Value};

const IDP: &str = "https://idp.bench.example/";
const SP: &str = "https://app.bench.example/sp";
const ACS: &str = "https://app.bench.example/acs";

const UPSERT: &str = "
INSERT INTO saml_jit.users AS u (idp_id, subject, name_id, email, attributes, last_login_at, login_count)
VALUES (1, $1, $1, $2, $3, now(), 1)
ON CONFLICT (idp_id, subject) DO UPDATE
   SET email = EXCLUDED.email, attributes = EXCLUDED.attributes,
       last_login_at = now(), login_count = u.login_count + 1
RETURNING id::text";

fn service_provider(cert_pem: &str) -> ServiceProvider {
    let cert: String = cert_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let metadata: EntityDescriptor = format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{IDP}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
      <ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{IDP}sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"#
    )
    .parse()
    .expect("IdP metadata");
    ServiceProviderBuilder::default()
        .entity_id(SP.to_string())
        .acs_url(ACS.to_string())
        .idp_metadata(metadata)
        .allow_idp_initiated(true)
        // The pool is minted before the run; its responses stay valid 12 h.
        .max_issue_delay(chrono::Duration::hours(12))
        .build()
        .expect("service provider")
}

/// Verifies and records one login; its latency.
fn login(sp: &ServiceProvider, db: &mut Client, response: &str) -> Duration {
    let t0 = Instant::now();
    let assertion = sp
        .parse_base64_response(response, None)
        .unwrap_or_else(|e| panic!("samael refused a valid response: {e}"));
    let subject = assertion
        .subject
        .as_ref()
        .and_then(|s| s.name_id.as_ref())
        .map(|n| n.value.clone())
        .expect("NameID");
    let mut attributes = Map::new();
    for statement in assertion.attribute_statements.iter().flatten() {
        for a in &statement.attributes {
            let values = a.values.iter().filter_map(|v| v.value.clone());
            attributes.insert(
                a.name.clone().unwrap_or_default(),
                Value::Array(values.map(Value::String).collect()),
            );
        }
    }
    let email = attributes
        .get("mail")
        .and_then(|v| v[0].as_str())
        .map(str::to_string);
    let mut tx = db.transaction().unwrap();
    let fresh = tx
        .query_opt(
            "INSERT INTO saml_jit.consumed_assertion (idp_id, assertion_id, valid_until)
             VALUES (1, $1, now() + interval '1 day') ON CONFLICT DO NOTHING RETURNING 1",
            &[&assertion.id],
        )
        .unwrap();
    assert!(fresh.is_some(), "replay of {}", assertion.id);
    let user_id: String = tx
        .query_one(UPSERT, &[&subject, &email, &Value::Object(attributes)])
        .unwrap()
        .get(0);
    tx.execute(
        "INSERT INTO saml_jit.audit_log (event, idp_id, user_id, subject) VALUES ('login', 1, $1::text::uuid, $2)",
        &[&user_id, &subject],
    )
    .unwrap();
    tx.commit().unwrap();
    t0.elapsed()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, pool, count, clients, dsn] = &args[..] else {
        panic!("usage: samael-acs POOL_TSV COUNT CLIENTS DSN");
    };
    let count: usize = count.parse().unwrap();
    let clients: usize = clients.parse().unwrap();
    let cert = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../pgrx-tests/fixtures/demo-idp.crt"),
    )
    .unwrap();
    let sp = service_provider(&cert);
    let pool = std::fs::read_to_string(pool).unwrap();
    let responses: Vec<&str> = pool
        .lines()
        .take(count)
        .map(|l| l.split('\t').nth(1).unwrap())
        .collect();

    let start = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..clients)
            .map(|i| {
                let (sp, responses) = (&sp, &responses);
                s.spawn(move || {
                    let mut db = Client::connect(dsn, NoTls).unwrap();
                    responses
                        .iter()
                        .skip(i)
                        .step_by(clients)
                        .map(|r| login(sp, &mut db, r))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    let pick = |q: f64| {
        latencies[((q * latencies.len() as f64) as usize).min(latencies.len() - 1)].as_secs_f64()
            * 1000.0
    };
    println!(
        "{} {:.1} {:.2} {:.2}",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        pick(0.5),
        pick(0.99)
    );
}
