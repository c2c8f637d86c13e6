//! Every case of the shared conformance corpus (../shared/conformance, format
//! in its README) through the SQL API, each in its own rolled-back transaction.

use std::path::Path;

use base64::Engine;
use serde_json::Value;

use saml_jit_integration::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The SAMLResponse form value of a case, per its `encoding` and `xml_edit`.
fn saml_response(dir: &Path, case: &Value) -> String {
    let raw = std::fs::read(dir.join(case["file"].as_str().unwrap())).unwrap();
    let compact = |b: &[u8]| {
        b.iter()
            .copied()
            .filter(|c| !c.is_ascii_whitespace())
            .collect::<Vec<u8>>()
    };
    let mut xml = match case["encoding"].as_str().unwrap() {
        "xml" => raw,
        "base64" => B64.decode(compact(&raw)).unwrap(),
        "base64-deflate" => {
            let deflated = B64.decode(compact(&raw)).unwrap();
            let mut out = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::DeflateDecoder::new(&deflated[..]),
                &mut out,
            )
            .unwrap();
            out
        }
        other => panic!("unknown encoding {other}"),
    };
    if let Some(edit) = case.get("xml_edit") {
        let text = String::from_utf8(xml).unwrap();
        let count = edit["count"].as_u64().unwrap() as usize;
        xml = text
            .replacen(
                edit["find"].as_str().unwrap(),
                edit["replace"].as_str().unwrap(),
                count,
            )
            .into_bytes();
    }
    B64.encode(xml)
}

fn trim_xml_ws(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
}

/// Runs one case; Err describes the mismatch.
fn run_case(client: &mut Client, dir: &Path, case: &Value) -> Result<(), String> {
    // Every feature tag of the corpus (encrypted-assertion, ecdsa) is
    // implemented: tagged cases run like the others.
    let response = saml_response(dir, case);
    let idp = &case["idp"];
    let policy = &case["policy"];
    let certs: Vec<String> = idp["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| std::fs::read_to_string(dir.join(p.as_str().unwrap())).unwrap())
        .collect();
    let mut tx = client.transaction().map_err(|e| e.to_string())?;
    let setup = (|| -> Result<(), postgres::Error> {
        let sp = case["sp"]["entity_id"].as_str().unwrap();
        let idp_id = idp["entity_id"].as_str().unwrap();
        tx.execute(
            "SELECT saml_jit_add_sp($1, $2)",
            &[&sp, &case["sp"]["acs_url"].as_str().unwrap()],
        )?;
        tx.execute(
            "SELECT saml_jit_add_idp($1, $2, $3)",
            &[&idp_id, &certs[0], &sp],
        )?;
        for cert in &certs[1..] {
            tx.execute(
                "SELECT saml_jit_add_idp_certificate($1, $2)",
                &[&idp_id, cert],
            )?;
        }
        tx.execute(
            "UPDATE saml_jit.identity_provider
                SET allow_sha1 = $2, require_audience = $3, allow_idp_initiated = $4,
                    clock_skew = make_interval(secs => $5::int)
              WHERE entity_id = $1",
            &[
                &idp_id,
                &policy["allow_sha1"].as_bool().unwrap(),
                &policy["require_audience"].as_bool().unwrap(),
                &policy["allow_idp_initiated"].as_bool().unwrap(),
                &(policy["clock_skew_seconds"].as_i64().unwrap() as i32),
            ],
        )?;
        if let Some(key) = case["sp_private_key"].as_str() {
            let pem = std::fs::read_to_string(dir.join(key)).unwrap();
            tx.execute("SELECT saml_jit_set_sp_key($1, $2)", &[&sp, &pem])?;
        }
        tx.batch_execute(&format!(
            "SET LOCAL saml_jit.now_override = '{}'",
            case["now"].as_str().unwrap().replace('\'', "")
        ))?;
        Ok(())
    })();
    setup.map_err(|e| format!("setup failed: {e}"))?;
    let irt = policy["in_response_to"].as_str();
    let result = tx.query_one(
        "SELECT name_id, attributes::text FROM saml_jit_login($1, in_response_to => $2)",
        &[&response, &irt],
    );
    let _ = tx.rollback();
    let expect = &case["expect"];
    let want_outcome = expect["outcome"].as_str().unwrap();
    let want_reasons: Vec<String> = expect["reasons"]
        .as_array()
        .map(|a| a.iter().map(|r| r.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    match (want_outcome, result) {
        ("accept", Ok(row)) => {
            let name_id: Option<String> = row.get(0);
            let want = expect["name_id"].as_str().unwrap();
            if trim_xml_ws(name_id.as_deref().unwrap_or("")) != trim_xml_ws(want) {
                return Err(format!("name_id {name_id:?}, expected {want:?}"));
            }
            let attrs: Value = serde_json::from_str(&row.get::<_, String>(1)).unwrap();
            for (name, values) in expect["attributes"].as_object().into_iter().flatten() {
                let got: Vec<String> = attrs[name]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|v| trim_xml_ws(v.as_str().unwrap()).to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                let want: Vec<String> = values
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| trim_xml_ws(v.as_str().unwrap()).to_string())
                    .collect();
                if got != want {
                    return Err(format!("attribute {name}: {got:?}, expected {want:?}"));
                }
            }
            Ok(())
        }
        ("accept", Err(e)) => Err(format!("rejected: {}", describe(&e))),
        ("reject", Ok(_)) => Err(format!("accepted, expected one of {want_reasons:?}")),
        ("reject", Err(e)) => {
            let db = e
                .as_db_error()
                .ok_or_else(|| format!("non-database error {e}"))?;
            let reason = db
                .message()
                .strip_prefix("SAML response rejected: ")
                .unwrap_or("");
            if db.code().code() != "28000" || !want_reasons.iter().any(|r| r == reason) {
                return Err(format!(
                    "{}, expected 28000 with one of {want_reasons:?}",
                    describe(&e)
                ));
            }
            Ok(())
        }
        (other, _) => Err(format!("unknown outcome {other}")),
    }
}

fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{} {} (DETAIL: {})",
            db.code().code(),
            db.message(),
            db.detail().unwrap_or("")
        ),
        None => e.to_string(),
    }
}

#[test]
fn every_conformance_case() {
    let Some(dir) = conformance_dir() else {
        eprintln!(
            "\n\n*** SKIPPED: ../shared/conformance is absent beside this checkout; \
             the conformance corpus was NOT run. ***\n\n"
        );
        return;
    };
    let corpus: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let cases = corpus["cases"].as_array().unwrap();
    let mut client = fresh_database("it_conformance");
    let mut failures = Vec::new();
    for case in cases {
        let id = case["id"].as_str().unwrap();
        match run_case(&mut client, &dir, case) {
            Ok(()) => eprintln!("ok   {id}"),
            Err(why) => {
                eprintln!("FAIL {id}: {why}");
                failures.push(format!("{id}: {why}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} conformance cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
