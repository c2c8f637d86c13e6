//! One attack or misconfiguration per API.md reason code, each refused with
//! SQLSTATE 28000, that code, and a DETAIL; the last test checks that every
//! code of API.md was produced by some scenario here (one test, run in order).

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde_json::json;

use saml_jit_integration::*;

static SEEN: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

#[track_caller]
fn expect(result: Result<Login, Refusal>, reason: &'static str) -> String {
    let detail = assert_rejected(result, reason);
    SEEN.lock().unwrap().insert(reason);
    detail
}

/// A database with the demo IdP trusted, named after the test.
fn db(name: &str) -> Client {
    let mut c = fresh_database(name);
    trust_demo_idp(&mut c);
    c
}

fn with_now(client: &mut Client, now: &str) {
    client
        .batch_execute(&format!("SET saml_jit.now_override = '{now}'"))
        .unwrap();
}

fn shift(instant: &str, seconds: i64) -> String {
    // pysaml2 writes instants as 2026-01-01T00:00:00Z.
    let t = chrono_like_parse(instant) + seconds;
    let (d, s) = (t.div_euclid(86400), t.rem_euclid(86400));
    let (y, m, dd) = civil_from_days(d);
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

fn chrono_like_parse(t: &str) -> i64 {
    let n = |a: usize, b: usize| t[a..b].parse::<i64>().unwrap();
    days_from_civil(n(0, 4), n(5, 7), n(8, 10)) * 86400
        + n(11, 13) * 3600
        + n(14, 16) * 60
        + n(17, 19)
}

// Howard Hinnant's civil-date algorithms (no date crate needed for tests).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

fn attr_value<'a>(xml: &'a str, name: &str) -> &'a str {
    let at = xml.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
    &xml[at..at + xml[at..].find('"').unwrap()]
}

fn input_shape_reasons() {
    let mut c = db("it_reason_input");
    expect(login(&mut c, "%%% not base64 %%%", None), "malformed");
    expect(
        login(&mut c, &to_response("<samlp:Response"), None),
        "malformed",
    );
    let laughs = "<!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]><r>&b;</r>";
    expect(login(&mut c, &to_response(laughs), None), "dtd_forbidden");
    c.batch_execute("SET saml_jit.max_response_bytes = 2048")
        .unwrap();
    let big = mint_one(spec("big"));
    let detail = expect(login(&mut c, &big, None), "too_large");
    assert!(detail.contains("2048"), "{detail}");
}

fn issuer_and_idp_reasons() {
    let mut c = db("it_reason_issuer");
    let [a, b, d] = <[String; 3]>::try_from(mint(&[spec("u1"), spec("u2"), spec("u3")])).unwrap();
    // Response (unsigned when only the assertion is signed) names another issuer.
    let xml = to_xml(&a).replacen(IDP, "https://unknown.example/", 1);
    let detail = expect(login(&mut c, &to_response(&xml), None), "unknown_issuer");
    assert!(detail.contains("unknown.example"), "{detail}");
    c.execute("UPDATE saml_jit.identity_provider SET enabled = false", &[])
        .unwrap();
    expect(login(&mut c, &b, None), "idp_disabled");
    c.execute("UPDATE saml_jit.identity_provider SET enabled = true", &[])
        .unwrap();
    // An unsigned error status from the IdP.
    let failed = to_xml(&d).replace(
        "urn:oasis:names:tc:SAML:2.0:status:Success",
        "urn:oasis:names:tc:SAML:2.0:status:Responder",
    );
    expect(
        login(&mut c, &to_response(&failed), None),
        "status_not_success",
    );
}

fn signature_reasons() {
    let mut c = db("it_reason_signature");
    let mut sha1 = spec("u1");
    sha1["sign_alg"] = json!("rsa-sha1");
    let responses = mint(&[spec("u0"), sha1, spec("u2"), spec("u3")]);
    let xml = to_xml(&responses[0]);
    let s = xml.find("<ns2:Signature").unwrap();
    let e = xml.find("</ns2:Signature>").unwrap() + 16;
    expect(
        login(
            &mut c,
            &to_response(&format!("{}{}", &xml[..s], &xml[e..])),
            None,
        ),
        "unsigned",
    );
    let forged = xml.replace("u0@example.com", "root@example.com");
    expect(
        login(&mut c, &to_response(&forged), None),
        "signature_invalid",
    );
    expect(login(&mut c, &responses[1], None), "algorithm_forbidden");
    // A Reference that points elsewhere than its own Assertion.
    let other = to_xml(&responses[2]);
    let id = attr_value(&other, "URI");
    let retargeted = other.replacen(&format!("URI=\"{id}\""), "URI=\"#somewhere-else\"", 1);
    let detail = expect(
        login(&mut c, &to_response(&retargeted), None),
        "reference_invalid",
    );
    assert!(detail.contains("#somewhere-else"), "{detail}");
    // Two assertions.
    let x3 = to_xml(&responses[3]);
    let a = x3.find("<ns1:Assertion").unwrap();
    let copy = x3[a..x3.find("</ns1:Assertion>").unwrap() + 16].replace("ID=\"id-", "ID=\"x-");
    let doubled = format!("{}{copy}{}", &x3[..a], &x3[a..]);
    expect(
        login(&mut c, &to_response(&doubled), None),
        "multiple_assertions",
    );
}

fn addressing_reasons() {
    let mut c = db("it_reason_addressing");
    let mut other_sp = spec("u1");
    other_sp["sp"] = json!("https://other-app.example/sp");
    let responses = mint(&[spec("u0"), other_sp, spec("u2")]);
    // Destination lives on the unsigned Response here; change it.
    let x0 = to_xml(&responses[0]).replacen(
        &format!("Destination=\"{ACS}\""),
        "Destination=\"https://evil.example/acs\"",
        1,
    );
    expect(
        login(&mut c, &to_response(&x0), None),
        "destination_mismatch",
    );
    let detail = expect(login(&mut c, &responses[1], None), "audience_mismatch");
    assert!(detail.contains("other-app.example"), "{detail}");
    // Recipient: the SP's ACS URL changes after the IdP addressed the response.
    c.execute(
        "UPDATE saml_jit.service_provider SET acs_url = 'https://app.test.example/new-acs'",
        &[],
    )
    .unwrap();
    let x2 = to_xml(&responses[2]).replacen(&format!(" Destination=\"{ACS}\""), "", 1);
    expect(login(&mut c, &to_response(&x2), None), "recipient_mismatch");
}

fn time_reasons_say_instant_bound_and_skew() {
    let mut c = db("it_reason_time");
    let [early, late] = <[String; 2]>::try_from(mint(&[spec("u0"), spec("u1")])).unwrap();
    let issued = attr_value(&to_xml(&early), "IssueInstant").to_string();
    with_now(&mut c, &shift(&issued, -3600));
    let detail = expect(login(&mut c, &early, None), "not_yet_valid");
    assert!(
        detail.contains("now is") && detail.contains("clock skew of 180 s"),
        "{detail}"
    );
    with_now(&mut c, &shift(&issued, 3600));
    let detail = expect(login(&mut c, &late, None), "expired");
    assert!(
        detail.contains("NotOnOrAfter") && detail.contains("180 s"),
        "{detail}"
    );
    // Within the skew the same response is fine.
    with_now(&mut c, &shift(&issued, 5 * 60 + 170));
    login(&mut c, &late, None).expect("inside the clock skew");
}

fn request_reasons() {
    let mut c = db("it_reason_request");
    let mut answered = spec("u0");
    answered["in_response_to"] = json!("_req_1");
    let [answer, unsolicited, fine] =
        <[String; 3]>::try_from(mint(&[answered, spec("u1"), spec("u2")])).unwrap();
    let detail = expect(
        login(&mut c, &answer, Some("_req_2")),
        "in_response_to_mismatch",
    );
    assert!(
        detail.contains("_req_1") && detail.contains("_req_2"),
        "{detail}"
    );
    c.execute(
        "UPDATE saml_jit.identity_provider SET allow_idp_initiated = false",
        &[],
    )
    .unwrap();
    expect(login(&mut c, &unsolicited, None), "unsolicited");
    c.execute(
        "UPDATE saml_jit.identity_provider SET allow_idp_initiated = true",
        &[],
    )
    .unwrap();
    login(&mut c, &fine, None).unwrap();
    expect(login(&mut c, &fine, None), "replay");
}

fn subject_and_provisioning_reasons() {
    let mut c = db("it_reason_subject");
    let responses = mint(&[spec("u0"), spec("u1"), spec("u2"), spec("u3"), spec("u4")]);
    c.execute(
        "UPDATE saml_jit.identity_provider SET user_key = 'employeeNumber'",
        &[],
    )
    .unwrap();
    let detail = expect(login(&mut c, &responses[0], None), "subject_missing");
    assert!(detail.contains("employeeNumber"), "{detail}");
    c.execute(
        "UPDATE saml_jit.identity_provider SET user_key = 'name_id'",
        &[],
    )
    .unwrap();
    c.execute(
        "INSERT INTO saml_jit.attribute_mapping (attribute, target, required) VALUES ('employeeNumber', 'employee_number', true)",
        &[],
    )
    .unwrap();
    let detail = expect(
        login(&mut c, &responses[1], None),
        "required_attribute_missing",
    );
    assert!(detail.contains("employeeNumber"), "{detail}");
    c.execute("DELETE FROM saml_jit.attribute_mapping", &[])
        .unwrap();
    c.execute(
        "UPDATE saml_jit.identity_provider SET jit_create = false",
        &[],
    )
    .unwrap();
    expect(login(&mut c, &responses[2], None), "provisioning_disabled");
    c.execute(
        "UPDATE saml_jit.identity_provider SET jit_create = true",
        &[],
    )
    .unwrap();
    login(&mut c, &responses[3], None).unwrap();
    c.execute(
        "UPDATE saml_jit.users SET status = 'disabled' WHERE subject = 'u3'",
        &[],
    )
    .unwrap();
    let again = mint_one(spec("u3"));
    expect(login(&mut c, &again, None), "user_disabled");
    let status: String = c
        .query_one(
            "SELECT status FROM saml_jit.users WHERE subject = 'u3'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        status, "disabled",
        "a refused login must not re-enable the user"
    );
}

fn encrypted_assertions_without_an_sp_key_are_refused() {
    let mut c = db("it_reason_encrypted");
    let xml = to_xml(&mint_one(spec("u0")));
    let a = xml.find("<ns1:Assertion").unwrap();
    let e = xml.find("</ns1:Assertion>").unwrap() + 16;
    let encrypted = format!(
        "{}<ns1:EncryptedAssertion><xenc:EncryptedData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\"/></ns1:EncryptedAssertion>{}",
        &xml[..a],
        &xml[e..]
    );
    expect(
        login(&mut c, &to_response(&encrypted), None),
        "encrypted_unsupported",
    );
}

/// Version 0.2: an IdP vouching for another customer's e-mail domain, a user
/// without the required group, and the application's hook refusing.
fn saas_reasons() {
    let mut c = db("it_reason_saas");
    c.batch_execute(
        "CREATE FUNCTION public.no_seats(event jsonb) RETURNS void LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'no seats left for %', event ->> 'email'; END $$;
         UPDATE saml_jit.identity_provider SET email_domains = '{example.com}', required_groups = '{staff}'",
    )
    .unwrap();
    let mut other = spec("u0");
    other["attributes"]["mail"] = json!(["u0@another-customer.example"]);
    other["attributes"]["groups"] = json!(["staff"]);
    let detail = expect(
        login(&mut c, &mint_one(other), None),
        "email_domain_not_allowed",
    );
    assert!(detail.contains("another-customer.example"), "{detail}");
    let mut outsider = spec("u1");
    outsider["attributes"]["groups"] = json!(["contractors"]);
    let detail = expect(login(&mut c, &mint_one(outsider), None), "not_entitled");
    assert!(
        detail.contains("contractors") && detail.contains("staff"),
        "{detail}"
    );
    c.batch_execute("UPDATE saml_jit.identity_provider SET on_login = 'public.no_seats(jsonb)'")
        .unwrap();
    let mut member = spec("u2");
    member["attributes"]["groups"] = json!(["staff"]);
    let detail = expect(
        login(&mut c, &mint_one(member), None),
        "provisioning_refused",
    );
    assert_eq!(detail, "no seats left for u2@example.com");
}

/// Every scenario, in order, then the check that all API.md codes were produced.
#[test]
fn every_api_reason_code_is_produced_by_an_attack() {
    input_shape_reasons();
    issuer_and_idp_reasons();
    signature_reasons();
    addressing_reasons();
    time_reasons_say_instant_bound_and_skew();
    request_reasons();
    subject_and_provisioning_reasons();
    encrypted_assertions_without_an_sp_key_are_refused();
    saas_reasons();
    let all = [
        "too_large",
        "malformed",
        "dtd_forbidden",
        "unknown_issuer",
        "idp_disabled",
        "status_not_success",
        "unsigned",
        "signature_invalid",
        "algorithm_forbidden",
        "reference_invalid",
        "multiple_assertions",
        "destination_mismatch",
        "audience_mismatch",
        "recipient_mismatch",
        "not_yet_valid",
        "expired",
        "in_response_to_mismatch",
        "unsolicited",
        "replay",
        "subject_missing",
        "required_attribute_missing",
        "provisioning_disabled",
        "user_disabled",
        "encrypted_unsupported",
        "provisioning_refused",
        "email_domain_not_allowed",
        "not_entitled",
    ];
    let seen = SEEN.lock().unwrap();
    let missing: Vec<_> = all.iter().filter(|r| !seen.contains(*r)).collect();
    assert!(
        missing.is_empty(),
        "reason codes no scenario produced: {missing:?}"
    );
}
