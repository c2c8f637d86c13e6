//! saml_jit_explain: every check reported, all failures (not only the first)
//! visible, the planned user change shown, and nothing written.

use serde_json::json;

use saml_jit_integration::*;

fn explain(c: &mut Client, response: &str) -> Vec<(String, String, String)> {
    c.query(
        "SELECT step, outcome, detail FROM saml_jit_explain($1)",
        &[&response],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

fn outcome<'a>(rows: &'a [(String, String, String)], step: &str) -> &'a str {
    rows.iter()
        .find(|r| r.0 == step)
        .map(|r| r.1.as_str())
        .unwrap_or_else(|| panic!("no step {step}: {rows:?}"))
}

fn count(c: &mut Client, table: &str) -> i64 {
    c.query_one(&format!("SELECT count(*) FROM saml_jit.{table}"), &[])
        .unwrap()
        .get(0)
}

#[test]
fn explains_without_writing() {
    let mut c = fresh_database("it_explain");
    trust_demo_idp(&mut c);
    let good = mint_one(spec("ex"));
    let rows = explain(&mut c, &good);
    for step in [
        "decode",
        "idp",
        "signature",
        "issuer",
        "audience",
        "subject_confirmation",
        "authn_statement",
        "replay",
        "mapping",
        "user",
    ] {
        assert_eq!(outcome(&rows, step), "pass", "{step}: {rows:?}");
    }
    assert_eq!(outcome(&rows, "result"), "accept");
    assert!(
        rows.iter()
            .any(|r| r.0 == "user" && r.2.contains("would create")),
        "{rows:?}"
    );
    for table in ["users", "consumed_assertion", "audit_log"] {
        assert_eq!(count(&mut c, table), 0, "explain wrote to {table}");
    }
    // The explained response is still good for a real login afterwards.
    login(&mut c, &good, None).expect("explain consumed nothing");

    // Several problems at once: all are listed, the verdict names the first.
    let mut wrong = spec("ex");
    wrong["sp"] = json!("https://someone-else.example/sp");
    wrong["attributes"]["title"] = json!(["Boss"]);
    let wrong = mint_one(wrong);
    let issued = to_xml(&wrong);
    let at = issued.find("IssueInstant=\"").unwrap() + 14;
    let year: i32 = issued[at..at + 4].parse().unwrap();
    c.batch_execute(&format!(
        "SET saml_jit.now_override = '{}-01-01T00:00:00Z'",
        year + 1
    ))
    .unwrap();
    let rows = explain(&mut c, &wrong);
    assert_eq!(
        outcome(&rows, "conditions_time"),
        "fail: expired",
        "{rows:?}"
    );
    assert_eq!(
        outcome(&rows, "audience"),
        "fail: audience_mismatch",
        "{rows:?}"
    );
    assert_eq!(outcome(&rows, "result"), "reject: expired");
    c.batch_execute("RESET saml_jit.now_override").unwrap();

    // A returning user: the planned update, column by column.
    let mut promoted = spec("ex");
    promoted["attributes"]["title"] = json!(["Lead"]);
    let rows = explain(&mut c, &mint_one(promoted));
    let user = rows.iter().find(|r| r.0 == "user").unwrap();
    assert!(
        user.2.contains("would update") && user.2.contains("\"new\":\"Lead\""),
        "{user:?}"
    );

    // A forged response stops at the signature.
    let forged =
        to_response(&to_xml(&mint_one(spec("ex"))).replace("ex@example.com", "root@example.com"));
    let rows = explain(&mut c, &forged);
    assert_eq!(outcome(&rows, "signature"), "fail: signature_invalid");
    assert_eq!(outcome(&rows, "result"), "reject: signature_invalid");
    assert_eq!(count(&mut c, "users"), 1);
}
