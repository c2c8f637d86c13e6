//! SP-initiated login: saml_jit_authn_request issues a request that pysaml2,
//! acting as the IdP, parses and answers; the answer is accepted once, and a
//! response to an unknown, answered or expired request is refused.

use base64::Engine;
use serde_json::json;

use saml_jit_integration::*;

fn setup(name: &str) -> Client {
    let mut c = fresh_database(name);
    trust_demo_idp(&mut c);
    c.execute(
        "UPDATE saml_jit.identity_provider SET sso_url_redirect = 'https://idp.test.example/sso?tenant=1'",
        &[],
    )
    .unwrap();
    c
}

fn start(c: &mut Client, relay: Option<&str>) -> (String, String) {
    let row = c
        .query_one(
            "SELECT request_id, redirect_url FROM saml_jit_authn_request($1, $2)",
            &[&IDP, &relay],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

fn answering(c: &mut Client, user: &str, url: &str) -> serde_json::Value {
    let sp_metadata: String = c
        .query_one("SELECT saml_jit_sp_metadata()::text", &[])
        .unwrap()
        .get(0);
    let mut s = spec(user);
    s["answer_url"] = json!(url);
    s["sp_metadata"] = json!(sp_metadata);
    s
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| {
            let mut out = Vec::new();
            let b = v.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' {
                    out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
                    i += 3;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        })
    })
}

#[test]
fn a_request_answered_by_a_real_idp_logs_in_once() {
    let mut c = setup("it_spi_flow");
    let (id, url) = start(&mut c, Some("/after/login?x=1"));
    assert!(
        url.starts_with("https://idp.test.example/sso?tenant=1&SAMLRequest="),
        "{url}"
    );
    assert_eq!(
        query_param(&url, "RelayState").as_deref(),
        Some("/after/login?x=1")
    );
    assert!(
        query_param(&url, "Signature").is_none(),
        "unsigned unless the IdP wants signed requests"
    );
    let spec = answering(&mut c, "spi", &url);
    let [first, second] = <[String; 2]>::try_from(mint(&[spec.clone(), spec])).unwrap();
    assert!(
        to_xml(&first).contains(&format!("InResponseTo=\"{id}\"")),
        "pysaml2 answered our request"
    );
    login(&mut c, &first, None).expect("the answer to an outstanding request");
    let detail = assert_rejected(login(&mut c, &second, None), "in_response_to_mismatch");
    assert!(detail.contains("already answered"), "{detail}");
    // The very same response posted again is named for what it is.
    let detail = assert_rejected(login(&mut c, &first, None), "replay");
    assert!(detail.contains("already used"), "{detail}");
    let consumed: bool = c
        .query_one(
            "SELECT consumed_at IS NOT NULL FROM saml_jit.authn_request WHERE request_id = $1",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert!(consumed);
}

#[test]
fn unknown_and_expired_requests_are_refused() {
    let mut c = setup("it_spi_refused");
    let mut unknown = spec("u1");
    unknown["in_response_to"] = json!("_never_sent");
    let detail = assert_rejected(
        login(&mut c, &mint_one(unknown.clone()), None),
        "in_response_to_mismatch",
    );
    assert!(detail.contains("no record"), "{detail}");
    // An application that tracks its own requests passes the ID explicitly.
    login(&mut c, &mint_one(unknown), Some("_never_sent")).expect("application-tracked request");

    let (_, url) = start(&mut c, None);
    let response = mint_one(answering(&mut c, "late", &url));
    let expires: String = c
        .query_one(
            "SELECT max(expires_at)::text FROM saml_jit.authn_request",
            &[],
        )
        .unwrap()
        .get(0);
    let later: String = c
        .query_one("SELECT to_char((max(expires_at) + interval '1 minute') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM saml_jit.authn_request", &[])
        .unwrap()
        .get(0);
    c.batch_execute(&format!("SET saml_jit.now_override = '{later}'; UPDATE saml_jit.identity_provider SET clock_skew = '10 minutes'"))
        .unwrap();
    let detail = assert_rejected(login(&mut c, &response, None), "in_response_to_mismatch");
    assert!(detail.contains("expired"), "{detail} ({expires})");
}

#[test]
fn signed_requests_verify_with_the_sp_certificate() {
    let mut c = setup("it_spi_signed");
    c.batch_execute("UPDATE saml_jit.identity_provider SET sign_authn_requests = true")
        .unwrap();
    let err = c
        .query("SELECT * FROM saml_jit_authn_request($1)", &[&IDP])
        .unwrap_err();
    assert_eq!(sqlstate(&err), "22023", "no SP key yet");
    install_sp_key(&mut c);
    let (_, url) = start(&mut c, Some("rs"));
    let query = url.split_once('?').unwrap().1;
    let signed_part =
        &query[query.find("SAMLRequest=").unwrap()..query.find("&Signature=").unwrap()];
    assert_eq!(
        query_param(&url, "SigAlg").as_deref(),
        Some("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
    );
    let signature = base64::engine::general_purpose::STANDARD
        .decode(query_param(&url, "Signature").unwrap())
        .unwrap();
    let cert = openssl::x509::X509::from_pem(read_fixture("sp.crt").as_bytes()).unwrap();
    let key = cert.public_key().unwrap();
    let mut verifier =
        openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
    verifier.update(signed_part.as_bytes()).unwrap();
    assert!(
        verifier.verify(&signature).unwrap(),
        "the Signature covers SAMLRequest, RelayState and SigAlg"
    );
    // pysaml2 still parses the signed request and answers it.
    let answer = mint_one(answering(&mut c, "signed", &url));
    login(&mut c, &answer, None).expect("answered");
}
