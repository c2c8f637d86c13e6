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

/// The AuthnRequest of an HTTP-Redirect URL, inflated.
fn redirected_xml(url: &str) -> String {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(query_param(url, "SAMLRequest").unwrap())
        .unwrap();
    let mut xml = String::new();
    std::io::Read::read_to_string(&mut flate2::read::DeflateDecoder::new(&raw[..]), &mut xml)
        .unwrap();
    xml
}

/// The SAMLRequest form value of the HTTP-POST binding, as XML.
fn posted_xml(saml_request: &str) -> String {
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(saml_request)
            .unwrap(),
    )
    .unwrap()
}

/// Verifies an enveloped signature with the xmlsec1 command-line tool
/// against the SP certificate only (no certificate from the message).
fn xmlsec1_verifies(xml: &str) -> bool {
    let dir = std::env::temp_dir().join(format!("saml_jit_post_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{:x}.xml", xml.len() ^ xml.as_ptr() as usize));
    std::fs::write(&file, xml).unwrap();
    let status = std::process::Command::new("xmlsec1")
        .args(["--verify", "--enabled-key-data", "rsa", "--pubkey-cert-pem"])
        .arg(fixture("sp.crt"))
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:protocol:AuthnRequest",
        ])
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("xmlsec1 (scripts/setup installs it)");
    std::fs::remove_file(&file).ok();
    status.success()
}

#[test]
fn a_post_only_idp_gets_the_http_post_binding_and_answers_it() {
    let mut c = setup("it_spi_post");
    c.batch_execute(
        "UPDATE saml_jit.identity_provider
            SET sso_url_redirect = NULL, sso_url_post = 'https://idp.test.example/sso'",
    )
    .unwrap();
    let row = c
        .query_one(
            "SELECT request_id, binding, redirect_url, post_url, saml_request
               FROM saml_jit_authn_request($1, relay_state => '/after')",
            &[&IDP],
        )
        .unwrap();
    let (id, binding, redirect, post, form): (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    assert_eq!((binding.as_str(), redirect), ("post", None));
    assert_eq!(post.as_deref(), Some("https://idp.test.example/sso"));
    let xml = posted_xml(form.as_deref().unwrap());
    assert!(xml.contains(&format!("ID=\"{id}\"")), "{xml}");
    assert!(
        xml.contains("Destination=\"https://idp.test.example/sso\""),
        "{xml}"
    );
    assert!(
        !xml.contains("Signature"),
        "unsigned unless the IdP wants signed requests"
    );
    assert!(
        !xml.contains("NameIDPolicy") && !xml.contains("RequestedAuthnContext"),
        "{xml}"
    );
    // pysaml2 parses the posted request and answers it; the answer logs in
    // once and returns the RelayState stored with the request.
    let mut s = answering(&mut c, "poster", "");
    s.as_object_mut().unwrap().remove("answer_url");
    s["answer_post"] = json!(form.unwrap());
    let answer = mint_one(s);
    let l = login(&mut c, &answer, None).expect("answered");
    assert_eq!(l.relay_state.as_deref(), Some("/after"));
    // Asking for HTTP-Redirect from a POST-only IdP, or an unknown binding.
    for binding in ["redirect", "soap"] {
        let err = c
            .query_one(
                "SELECT * FROM saml_jit_authn_request($1, binding => $2)",
                &[&IDP, &binding],
            )
            .unwrap_err();
        assert_eq!(sqlstate(&err), "22023", "{binding}: {err:?}");
    }
}

#[test]
fn a_signed_post_request_carries_an_enveloped_signature_the_idp_verifies() {
    let mut c = setup("it_spi_post_signed");
    install_sp_key(&mut c);
    c.batch_execute(
        "UPDATE saml_jit.identity_provider
            SET sso_url_post = 'https://idp.test.example/sso', sign_authn_requests = true",
    )
    .unwrap();
    // The IdP has both endpoints: HTTP-Redirect unless POST is asked for.
    let default: String = c
        .query_one("SELECT binding FROM saml_jit_authn_request($1)", &[&IDP])
        .unwrap()
        .get(0);
    assert_eq!(default, "redirect");
    let form: String = c
        .query_one(
            "SELECT saml_request FROM saml_jit_authn_request($1, binding => 'post')",
            &[&IDP],
        )
        .unwrap()
        .get(0);
    let xml = posted_xml(&form);
    let issuer_end = xml.find("</saml:Issuer>").unwrap() + "</saml:Issuer>".len();
    assert!(
        xml[issuer_end..].starts_with("<ds:Signature"),
        "the signature follows the Issuer: {xml}"
    );
    assert!(
        xml.contains("<ds:X509Certificate>"),
        "KeyInfo names the SP certificate"
    );
    assert!(
        xmlsec1_verifies(&xml),
        "xmlsec1 verifies with the SP certificate: {xml}"
    );
    // Changed after signing: neither xmlsec1 nor pysaml2 accepts it.
    let forged = xml.replace("https://app.test.example/acs", "https://evil.example/acs");
    assert_ne!(forged, xml);
    assert!(!xmlsec1_verifies(&forged));
    let mut s = answering(&mut c, "signed-post", "");
    s.as_object_mut().unwrap().remove("answer_url");
    s["answer_post"] = json!(base64::engine::general_purpose::STANDARD.encode(&forged));
    assert!(
        try_mint(&[s.clone()]).is_err(),
        "pysaml2 refuses the forged request"
    );
    s["answer_post"] = json!(form);
    login(&mut c, &mint_one(s), None).expect("the genuine request is answered");
}

#[test]
fn authn_request_options_reach_the_idp() {
    let mut c = setup("it_spi_options");
    c.batch_execute(
        "UPDATE saml_jit.identity_provider
            SET requested_authn_context = '{urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport}',
                name_id_policy_format = 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent'",
    )
    .unwrap();
    let url: String = c
        .query_one(
            "SELECT redirect_url FROM saml_jit_authn_request($1, force_authn => true, is_passive => true)",
            &[&IDP],
        )
        .unwrap()
        .get(0);
    let xml = redirected_xml(&url);
    for part in [
        " ForceAuthn=\"true\"",
        " IsPassive=\"true\"",
        "<samlp:NameIDPolicy Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:persistent\" AllowCreate=\"true\"/>",
        "<samlp:RequestedAuthnContext Comparison=\"exact\"><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></samlp:RequestedAuthnContext>",
    ] {
        assert!(xml.contains(part), "{part} in {xml}");
    }
    let answer = mint_one(answering(&mut c, "opts", &url));
    login(&mut c, &answer, None).expect("pysaml2 answers it");
    // ForceAuthn per IdP applies to every request; the defaults omit it.
    c.batch_execute(
        "UPDATE saml_jit.identity_provider SET force_authn = true, requested_authn_context = NULL,
                name_id_policy_format = NULL",
    )
    .unwrap();
    let url: String = c
        .query_one(
            "SELECT redirect_url FROM saml_jit_authn_request($1)",
            &[&IDP],
        )
        .unwrap()
        .get(0);
    let xml = redirected_xml(&url);
    assert!(
        xml.contains(" ForceAuthn=\"true\"") && !xml.contains("IsPassive"),
        "{xml}"
    );
    assert!(
        !xml.contains("NameIDPolicy") && !xml.contains("RequestedAuthnContext"),
        "{xml}"
    );
    let answer = mint_one(answering(&mut c, "opts2", &url));
    login(&mut c, &answer, None).expect("pysaml2 answers it");
}
