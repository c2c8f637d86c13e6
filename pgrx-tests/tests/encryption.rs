//! Encrypted assertions minted by pysaml2 (encrypted with the xmlsec1 tool
//! for the SP's certificate): decrypted with the key installed by
//! saml_jit_set_sp_key, and still required to be signed.

use serde_json::json;

use saml_jit_integration::*;

fn encrypted(user: &str, sign_response: bool, sign_assertion: bool) -> serde_json::Value {
    let mut s = spec(user);
    s["encrypt_for"] = json!(fixture("sp.crt"));
    s["sign_response"] = json!(sign_response);
    s["sign_assertion"] = json!(sign_assertion);
    s
}

#[test]
fn encrypted_assertions_decrypt_with_the_sp_key() {
    let mut c = fresh_database("it_enc_minted");
    trust_demo_idp(&mut c);
    let responses = mint(&[
        encrypted("e1", false, true),
        encrypted("e2", true, false),
        encrypted("e3", true, true),
        encrypted("e4", false, false),
        encrypted("e5", false, true),
    ]);
    // Without an SP key the login cannot read the assertion.
    let detail = assert_rejected(login(&mut c, &responses[4], None), "encrypted_unsupported");
    assert!(detail.contains("saml_jit_set_sp_key"), "{detail}");
    install_sp_key(&mut c);
    for (i, r) in responses[..3].iter().enumerate() {
        let user = format!("e{}", i + 1);
        let l = login(&mut c, r, None).unwrap_or_else(|e| panic!("{user}: {e:?}"));
        assert_eq!(l.subject, user);
        assert_eq!(l.email, Some(format!("{user}@example.com")));
    }
    // Encryption is not authentication.
    assert_rejected(login(&mut c, &responses[3], None), "unsigned");
    // Tampered ciphertext in a response whose only signature is inside the
    // encrypted assertion: decryption or the signature fails, never a login.
    let xml = to_xml(&responses[4]);
    let at = xml.find("<ns0:CipherValue>").unwrap() + "<ns0:CipherValue>".len();
    let at = at + xml[at..].find("</ns0:CipherValue>").unwrap() - 8; // the last block of the key
    let mut bytes = xml.into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    let tampered = to_response(&String::from_utf8(bytes).unwrap());
    let refused = login(&mut c, &tampered, None).expect_err("tampered ciphertext");
    assert_eq!(refused.sqlstate, "28000", "{refused:?}");
}

#[test]
fn the_sp_key_is_checked_when_stored() {
    let mut c = fresh_database("it_enc_key");
    trust_demo_idp(&mut c);
    let attempts = [
        ("not a key", None, "22023"),
        (read_fixture("sp.crt").leak() as &str, None, "22023"),
        (
            read_fixture("sp.key").leak() as &str,
            Some(read_fixture("demo-idp.crt")),
            "22023",
        ),
    ];
    for (key, cert, state) in attempts {
        let err = c
            .execute(
                "SELECT saml_jit_set_sp_key($1, $2, $3)",
                &[&SP, &key, &cert],
            )
            .expect_err("refused");
        assert_eq!(sqlstate(&err), state, "{err:?}");
    }
    let err = c
        .execute(
            "SELECT saml_jit_set_sp_key('https://nobody/', $1)",
            &[&read_fixture("sp.key")],
        )
        .expect_err("unknown SP");
    assert_eq!(sqlstate(&err), "42704");
    install_sp_key(&mut c);
    let fp: String = c
        .query_one("SELECT fingerprint_sha256 FROM saml_jit.sp_key", &[])
        .unwrap()
        .get(0);
    assert_eq!(fp.len(), 95);
}

fn encrypted_ids(email: &str) -> String {
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("idp/xmlsec1_encrypted_ids.sh");
    let out = std::process::Command::new(script)
        .args([fixture("sp.crt"), fixture("demo-idp.key")])
        .args([IDP, SP, ACS, email])
        .output()
        .expect("run xmlsec1");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn encrypted_ids_and_attributes_decrypt_inside_a_signed_assertion() {
    let mut c = fresh_database("it_enc_ids");
    trust_demo_idp(&mut c);
    let first = encrypted_ids("hidden@example.com");
    let xml = to_xml(&first);
    assert!(
        xml.contains("EncryptedID")
            && xml.contains("EncryptedAttribute")
            && !xml.contains("hidden@")
    );
    let detail = assert_rejected(login(&mut c, &first, None), "encrypted_unsupported");
    assert!(detail.contains("EncryptedID"), "{detail}");
    install_sp_key(&mut c);
    let l = login(&mut c, &encrypted_ids("hidden@example.com"), None).expect("decrypted");
    assert_eq!(l.subject, "hidden@example.com", "from the EncryptedID");
    assert_eq!(
        l.email.as_deref(),
        Some("hidden@example.com"),
        "from the EncryptedAttribute"
    );
    assert_eq!(
        l.attributes["mail"],
        serde_json::json!(["hidden@example.com"])
    );
}

/// The SP key rolls over while logins keep working: a next key decrypts as
/// soon as it is stored (and is published), promotion makes it current while
/// the old one still decrypts, retirement ends the old one.
#[test]
fn the_sp_key_rolls_over_without_a_failed_login() {
    let mut c = fresh_database("it_enc_rollover");
    trust_demo_idp(&mut c);
    install_sp_key(&mut c);
    let to = |user: &str, cert: &str| {
        let mut s = spec(user);
        s["encrypt_for"] = json!(fixture(cert));
        s
    };
    // "sp" is the old key pair, "other-idp" (any RSA pair) the new one.
    let r = mint(&[
        to("r1", "sp.crt"),
        to("r2", "other-idp.crt"),
        to("r3", "sp.crt"),
        to("r4", "other-idp.crt"),
        to("r5", "sp.crt"),
        to("r6", "other-idp.crt"),
        to("r7", "sp.crt"),
    ]);
    let published = |c: &mut Client| -> Vec<String> {
        let xml: String = c
            .query_one("SELECT saml_jit_sp_metadata()::text", &[])
            .unwrap()
            .get(0);
        xml.split("<ds:X509Certificate>")
            .skip(1)
            .map(|p| p[..p.find("</ds:X509Certificate>").unwrap()].to_string())
            .collect()
    };
    let body = |name: &str| -> String {
        read_fixture(name)
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect()
    };
    let (old, new) = (body("sp.crt"), body("other-idp.crt"));
    login(&mut c, &r[0], None).expect("the current key decrypts");
    assert_rejected(login(&mut c, &r[1], None), "encrypted_unsupported");
    assert_eq!(published(&mut c), vec![old.clone(), old.clone()]);

    // The next key: published beside the current one, and decrypting at once.
    c.execute(
        "SELECT saml_jit_set_sp_key($1, $2, $3, next => true)",
        &[
            &SP,
            &read_fixture("other-idp.key"),
            &read_fixture("other-idp.crt"),
        ],
    )
    .unwrap();
    assert_eq!(
        published(&mut c),
        vec![old.clone(), old.clone(), new.clone(), new.clone()],
        "current first (signing, encryption), then next"
    );
    login(&mut c, &r[2], None).expect("encrypted to the current key");
    login(&mut c, &r[1], None).expect("encrypted to the next key");

    // Promotion: the new key is current, the old one still decrypts.
    c.batch_execute(&format!("SELECT saml_jit_promote_sp_key('{SP}')"))
        .unwrap();
    assert_eq!(published(&mut c), vec![new.clone(), new.clone()]);
    login(&mut c, &r[3], None).expect("encrypted to the new current key");
    login(&mut c, &r[4], None).expect("encrypted to the previous key, during the overlap");
    // Requests are signed with the current key now.
    c.batch_execute(
        "UPDATE saml_jit.identity_provider SET sso_url_post = 'https://idp.test.example/sso',
                sign_authn_requests = true",
    )
    .unwrap();
    let form: String = c
        .query_one(
            "SELECT saml_request FROM saml_jit_authn_request($1, binding => 'post')",
            &[&IDP],
        )
        .unwrap()
        .get(0);
    let request = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, form).unwrap(),
    )
    .unwrap();
    assert!(
        request.contains(&new),
        "KeyInfo carries the new certificate"
    );

    // Retirement: the old key decrypts nothing any more.
    assert!(c
        .query_one("SELECT saml_jit_retire_sp_key($1)", &[&SP])
        .unwrap()
        .get::<_, bool>(0));
    assert!(!c
        .query_one("SELECT saml_jit_retire_sp_key($1)", &[&SP])
        .unwrap()
        .get::<_, bool>(0));
    login(&mut c, &r[5], None).expect("encrypted to the current key");
    assert_rejected(login(&mut c, &r[6], None), "encrypted_unsupported");
    let err = c
        .batch_execute(&format!("SELECT saml_jit_promote_sp_key('{SP}')"))
        .unwrap_err();
    assert_eq!(sqlstate(&err), "55000", "nothing to promote");
    let audited: i64 = c
        .query_one(
            "SELECT count(*) FROM saml_jit.audit_log WHERE event = 'configured'
                AND detail ->> 'via' IN ('saml_jit_promote_sp_key', 'saml_jit_retire_sp_key')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(audited, 2);
}
