//! Responses minted during the run by pysaml2 (an independent IdP that signs
//! with the xmlsec1 tool): valid ones are accepted in every signing mode, and
//! each tampering is refused with its reason.

use serde_json::json;

use saml_jit_integration::*;

#[test]
fn valid_responses_are_accepted_in_every_signing_mode() {
    let mut db = fresh_database("it_minted_modes");
    trust_demo_idp(&mut db);
    let modes = [
        (true, false, "rsa-sha256", "sha256"),
        (false, true, "rsa-sha256", "sha256"),
        (true, true, "rsa-sha256", "sha256"),
        (true, true, "rsa-sha512", "sha512"),
        (false, true, "rsa-sha512", "sha256"),
    ];
    let specs: Vec<_> = modes
        .iter()
        .enumerate()
        .map(|(i, (resp, assertion, alg, digest))| {
            let mut s = spec(&format!("user{i}"));
            s["sign_response"] = json!(resp);
            s["sign_assertion"] = json!(assertion);
            s["sign_alg"] = json!(alg);
            s["digest_alg"] = json!(digest);
            s
        })
        .collect();
    for ((i, mode), response) in modes.iter().enumerate().zip(mint(&specs)) {
        let user = format!("user{i}");
        let login =
            login(&mut db, &response, None).unwrap_or_else(|r| panic!("{mode:?} refused: {r:?}"));
        assert_eq!(login.subject, user, "{mode:?}");
        assert_eq!(login.name_id.as_deref(), Some(user.as_str()));
        assert_eq!(login.email, Some(format!("{user}@example.com")), "{mode:?}");
        assert_eq!(login.action, "created");
    }
    // The second login of a user updates it.
    let again = mint_one(spec("user0"));
    assert_eq!(login(&mut db, &again, None).unwrap().action, "updated");
}

#[test]
fn sha1_is_refused_unless_the_idp_allows_it() {
    let mut db = fresh_database("it_minted_sha1");
    trust_demo_idp(&mut db);
    let mut s = spec("old");
    s["sign_alg"] = json!("rsa-sha1");
    s["digest_alg"] = json!("sha1");
    let [first, second] = <[String; 2]>::try_from(mint(&[s.clone(), s])).unwrap();
    let detail = assert_rejected(login(&mut db, &first, None), "algorithm_forbidden");
    assert!(
        detail.contains("SHA-1") && detail.contains("allow_sha1"),
        "{detail}"
    );
    db.execute(
        "UPDATE saml_jit.identity_provider SET allow_sha1 = true",
        &[],
    )
    .unwrap();
    login(&mut db, &second, None).expect("SHA-1 allowed by policy");
}

#[test]
fn tampering_is_refused_with_its_reason() {
    let mut db = fresh_database("it_minted_tamper");
    trust_demo_idp(&mut db);
    let mut both = spec("eve");
    both["sign_response"] = json!(true);
    let responses = mint(&[spec("eve"), both, spec("eve2"), spec("eve3"), spec("eve4")]);
    let assertion_signed = to_xml(&responses[0]);
    let both_signed = to_xml(&responses[1]);

    // A changed attribute value inside the signed assertion.
    let changed = assertion_signed.replace("eve@example.com", "mallory@example.com");
    assert_ne!(changed, assertion_signed);
    assert_rejected(
        login(&mut db, &to_response(&changed), None),
        "signature_invalid",
    );

    // The same change when both Response and Assertion are signed.
    let changed = both_signed.replace("eve@example.com", "mallory@example.com");
    assert_rejected(
        login(&mut db, &to_response(&changed), None),
        "signature_invalid",
    );

    // Signature removed.
    let start = assertion_signed.find("<ns2:Signature").unwrap();
    let end = assertion_signed.find("</ns2:Signature>").unwrap() + "</ns2:Signature>".len();
    let stripped = format!("{}{}", &assertion_signed[..start], &assertion_signed[end..]);
    assert_rejected(login(&mut db, &to_response(&stripped), None), "unsigned");

    // An unsigned evil assertion placed before the signed one.
    let a = assertion_signed.find("<ns1:Assertion").unwrap();
    let evil = assertion_signed[a..assertion_signed.find("</ns1:Assertion>").unwrap() + 16]
        .replace("ID=\"id-", "ID=\"evil-")
        .replace("eve@example.com", "mallory@example.com");
    let wrapped = format!(
        "{}{}{}",
        &assertion_signed[..a],
        evil,
        &assertion_signed[a..]
    );
    assert_rejected(
        login(&mut db, &to_response(&wrapped), None),
        "multiple_assertions",
    );

    // A copy of the signed assertion (same ID) hidden in Extensions.
    let copy = &assertion_signed[a..assertion_signed.find("</ns1:Assertion>").unwrap() + 16];
    let status = assertion_signed.find("<ns0:Status>").unwrap();
    let hidden = format!(
        "{}<ns0:Extensions>{copy}</ns0:Extensions>{}",
        &assertion_signed[..status],
        &assertion_signed[status..]
    );
    assert_rejected(
        login(&mut db, &to_response(&hidden), None),
        "reference_invalid",
    );

    // Signed by a key the IdP's configuration does not hold.
    let mut foreign = spec("eve5");
    foreign["key"] = json!(fixture("other-idp.key"));
    foreign["cert"] = json!(fixture("other-idp.crt"));
    let foreign = mint_one(foreign);
    let detail = assert_rejected(login(&mut db, &foreign, None), "signature_invalid");
    assert!(detail.contains("active certificate"), "{detail}");

    // The genuine responses still work, once.
    login(&mut db, &responses[2], None).expect("untouched response");
    assert_rejected(login(&mut db, &responses[2], None), "replay");
}

#[test]
fn values_come_only_from_signed_bytes() {
    let mut db = fresh_database("it_minted_signed_only");
    trust_demo_idp(&mut db);
    let xml = to_xml(&mint_one(spec("alice")));
    // The enveloped Signature is excluded from its own digest, so content
    // placed inside it stays "valid". Put an unsigned Subject and
    // AttributeStatement with other values there: inside the Assertion in the
    // DOM, outside the signed bytes.
    let unsigned = "<ns1:Subject><ns1:NameID>mallory</ns1:NameID></ns1:Subject>\
        <ns1:AttributeStatement><ns1:Attribute Name=\"mail\">\
        <ns1:AttributeValue>mallory@evil.example</ns1:AttributeValue></ns1:Attribute>\
        <ns1:Attribute Name=\"role\"><ns1:AttributeValue>admin</ns1:AttributeValue></ns1:Attribute>\
        </ns1:AttributeStatement>";
    let key_info =
        xml.find("<ns2:KeyInfo>").expect("pysaml2 writes KeyInfo") + "<ns2:KeyInfo>".len();
    let injected = format!("{}{unsigned}{}", &xml[..key_info], &xml[key_info..]);
    assert!(injected.matches("NameID").count() > xml.matches("NameID").count());
    let login =
        login(&mut db, &to_response(&injected), None).expect("the signature still verifies");
    assert_eq!(login.subject, "alice");
    assert_eq!(login.email.as_deref(), Some("alice@example.com"));
    assert!(
        login.groups.is_empty(),
        "unsigned role leaked: {:?}",
        login.groups
    );
    let text = login.attributes.to_string();
    assert!(!text.contains("mallory"), "unsigned value leaked: {text}");
    let stored: String = db
        .query_one(
            "SELECT attributes::text || coalesce(email, '') FROM saml_jit.users",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!stored.contains("mallory"), "{stored}");
}
