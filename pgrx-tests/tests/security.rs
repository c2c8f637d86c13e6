//! The attack classes of the second security review, each shown failing
//! against genuinely signed responses (pysaml2, re-signed with the xmlsec1
//! tool where the attack needs a shape pysaml2 would not make).

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use base64::Engine;
use serde_json::json;

use saml_jit_integration::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn assertion_id(xml: &str) -> String {
    let tag = find_start_tag(xml, "Assertion").unwrap();
    let at = tag + xml[tag..].find(" ID=\"").unwrap() + 5;
    xml[at..at + xml[at..].find('"').unwrap()].to_string()
}

fn escape(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
}

#[test]
fn identifiers_that_are_not_ncnames_never_reach_xmlsec() {
    let mut c = fresh_database("it_sec_ids");
    trust_demo_idp(&mut c);
    c.batch_execute("SET statement_timeout = '20s'").unwrap();
    let xml = to_xml(&mint_one(spec("ids")));
    let id = assertion_id(&xml);
    let hostile = [
        "a')or(1=1",
        "x'),xpointer(id('x",
        "_a)|(//*",
        "xpointer(//*)",
        "_a b",
        "_a\"x",
        "_a:b",
        "_a,b",
    ];
    for value in hostile {
        let edited = xml
            .replace(
                &format!("ID=\"{id}\""),
                &format!("ID=\"{}\"", escape(value)),
            )
            .replace(
                &format!("URI=\"#{id}\""),
                &format!("URI=\"#{}\"", escape(value)),
            );
        let refusal = login(&mut c, &to_response(&edited), None).expect_err(value);
        assert_eq!(refusal.sqlstate, "28000", "{value}: {refusal:?}");
        assert!(
            refusal.reason == "malformed" || refusal.reason == "reference_invalid",
            "{value}: {refusal:?}"
        );
        assert!(
            refusal.detail.contains("xs:ID"),
            "{value}: {}",
            refusal.detail
        );
    }
    // An xml:id elsewhere in the document is an ID too.
    let edited = xml.replacen("<ns0:Status>", "<ns0:Status xml:id=\"x'),xpointer(/\">", 1);
    assert_rejected(login(&mut c, &to_response(&edited), None), "malformed");
    login(&mut c, &mint_one(spec("ids")), None).expect("a genuine response still works");
}

/// A FIFO that blocks whoever opens it, and a TCP listener that records any
/// connection: the two ways a backend could be made to read from outside.
struct Traps {
    dir: std::path::PathBuf,
    fifo: String,
    listener: TcpListener,
}

impl Traps {
    fn new(tag: &str) -> Traps {
        let dir = std::env::temp_dir().join(format!("saml_jit_{tag}_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let fifo = dir.join("fifo");
        let _ = std::fs::remove_file(&fifo);
        assert!(std::process::Command::new("mkfifo")
            .args(["-m", "666"])
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Traps {
            fifo: fifo.display().to_string(),
            dir,
            listener,
        }
    }

    fn targets(&self) -> Vec<String> {
        vec![
            format!("file://{}", self.fifo),
            self.fifo.clone(),
            "file:///etc/passwd".into(),
            format!(
                "http://127.0.0.1:{}/key",
                self.listener.local_addr().unwrap().port()
            ),
        ]
    }

    fn assert_untouched(&self) {
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            self.listener.accept().is_err(),
            "the database backend connected to a URL named in the message"
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn encrypted_spec(user: &str) -> serde_json::Value {
    let mut s = spec(user);
    s["encrypt_for"] = json!(fixture("sp.crt"));
    s
}

/// The EncryptedData start tag's prefix (`xenc:` or whatever pysaml2 used).
fn prefix_of(xml: &str, local: &str) -> String {
    let at = find_start_tag(xml, local).unwrap();
    let name_end = at + xml[at..].find(local).unwrap();
    xml[at + 1..name_end].to_string()
}

#[test]
fn decryption_resolves_nothing_outside_the_document() {
    let mut c = fresh_database("it_sec_decrypt_refs");
    trust_demo_idp(&mut c);
    install_sp_key(&mut c);
    c.batch_execute("SET statement_timeout = '10s'").unwrap();
    let traps = Traps::new("decrypt");
    let xml = to_xml(&mint_one(encrypted_spec("enc")));
    login(&mut c, &to_response(&xml), None).expect("the genuine encrypted response");
    let xenc = prefix_of(&xml, "EncryptedData");
    let dsig = "ds_evil";
    for target in traps.targets() {
        // The ciphertext itself somewhere else.
        let data = xml.rfind(&format!("<{xenc}CipherData")).unwrap();
        let data_end = xml[data..].find(&format!("</{xenc}CipherData>")).unwrap()
            + data
            + format!("</{xenc}CipherData>").len();
        let cipher_reference = format!(
            "{}<{xenc}CipherData><{xenc}CipherReference URI=\"{}\"/></{xenc}CipherData>{}",
            &xml[..data],
            escape(&target),
            &xml[data_end..]
        );
        let refusal = login(&mut c, &to_response(&cipher_reference), None).expect_err("refused");
        assert_eq!(refusal.sqlstate, "28000", "{target}: {refusal:?}");
        // The key somewhere else (RetrievalMethod in the EncryptedData's KeyInfo).
        let data_tag = find_start_tag(&xml, "EncryptedData").unwrap();
        let data_open_end = data_tag + xml[data_tag..].find('>').unwrap() + 1;
        let retrieval = format!(
            "{}<{dsig}:KeyInfo xmlns:{dsig}=\"http://www.w3.org/2000/09/xmldsig#\"><{dsig}:RetrievalMethod \
             URI=\"{}\" Type=\"http://www.w3.org/2001/04/xmlenc#EncryptedKey\"/></{dsig}:KeyInfo>{}",
            &xml[..data_open_end],
            escape(&target),
            &xml[data_open_end..]
        );
        let refusal = login(&mut c, &to_response(&retrieval), None).expect_err("refused");
        assert_eq!(refusal.sqlstate, "28000", "{target}: {refusal:?}");
    }
    traps.assert_untouched();
    login(&mut c, &mint_one(encrypted_spec("enc2")), None).expect("session still works");
}

#[test]
fn every_decryption_failure_gives_the_same_answer() {
    let mut c = fresh_database("it_sec_oracle");
    trust_demo_idp(&mut c);
    install_sp_key(&mut c);
    let xml = to_xml(&mint_one(encrypted_spec("oracle")));
    // The last CipherValue is the EncryptedData's: IV then ciphertext.
    let xenc = prefix_of(&xml, "EncryptedData");
    let open = format!("<{xenc}CipherValue>");
    let at = xml.rfind(&open).unwrap() + open.len();
    let end = at + xml[at..].find('<').unwrap();
    let data = B64
        .decode(
            xml[at..end]
                .bytes()
                .filter(|b| !b.is_ascii_whitespace())
                .collect::<Vec<u8>>(),
        )
        .unwrap();
    let with_data = |bytes: &[u8]| {
        to_response(&format!(
            "{}{}{}",
            &xml[..at],
            B64.encode(bytes),
            &xml[end..]
        ))
    };
    let flip = |i: usize| {
        let mut d = data.clone();
        d[i] ^= 0x55;
        with_data(&d)
    };
    let n = data.len();
    let variants = vec![
        ("first plaintext block garbled, padding intact", flip(0)),
        ("padding garbled", flip(n - 17)),
        ("last byte", flip(n - 1)),
        ("truncated", with_data(&data[..n - 16])),
        ("not a whole block", with_data(&data[..n - 3])),
        ("empty", with_data(&[])),
    ];
    let mut answers = Vec::new();
    for (what, response) in variants {
        let refusal = login(&mut c, &response, None).expect_err(what);
        answers.push((what, refusal.sqlstate, refusal.reason, refusal.detail));
    }
    // A wrong key: the response encrypted for another certificate.
    c.execute(
        "SELECT saml_jit_set_sp_key($1, $2)",
        &[&SP, &read_fixture("other-idp.key")],
    )
    .unwrap();
    let refusal = login(&mut c, &to_response(&xml), None).expect_err("wrong key");
    answers.push((
        "wrong key",
        refusal.sqlstate,
        refusal.reason,
        refusal.detail,
    ));
    let (_, state, reason, detail) = &answers[0];
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("28000", "encrypted_unsupported")
    );
    for (what, s, r, d) in &answers {
        assert_eq!(
            (s, r, d),
            (state, reason, detail),
            "{what} answered differently"
        );
    }
}

#[test]
fn unicode_spaces_are_part_of_the_identity() {
    let mut c = fresh_database("it_sec_unicode");
    trust_demo_idp(&mut c);
    c.execute(
        "UPDATE saml_jit.identity_provider SET user_key = 'uid' WHERE entity_id = $1",
        &[&IDP],
    )
    .unwrap();
    let with_uid = |user: &str, uid: &str, groups: &[&str]| {
        let mut s = spec(user);
        s["attributes"]["uid"] = json!([uid]);
        s["attributes"]["groups"] = json!(groups);
        s
    };
    let jdoe = login(&mut c, &mint_one(with_uid("n0", "jdoe", &["admins"])), None).unwrap();
    assert_eq!(jdoe.subject, "jdoe");
    assert_eq!(jdoe.groups, vec!["admins".to_string()]);
    // XML whitespace around a value is not part of it...
    let same = login(
        &mut c,
        &mint_one(with_uid("n1", " \tjdoe\n", &["\nadmins "])),
        None,
    )
    .unwrap();
    assert_eq!(
        (same.user_id.as_str(), same.action.as_str()),
        (jdoe.user_id.as_str(), "updated")
    );
    // ...but no Unicode space is: each of these is another account.
    let spaces = [
        '\u{A0}', '\u{3000}', '\u{2003}', '\u{85}', '\u{2028}', '\u{202F}', '\u{1680}', '\u{FEFF}',
    ];
    for (i, space) in spaces.iter().enumerate() {
        let uid = format!("jdoe{space}");
        let group = format!("admins{space}");
        let other = login(
            &mut c,
            &mint_one(with_uid(&format!("u{i}"), &uid, &[&group])),
            None,
        )
        .unwrap_or_else(|e| panic!("U+{:04X}: {e:?}", *space as u32));
        assert_eq!(other.subject, uid, "U+{:04X}", *space as u32);
        assert_eq!(other.action, "created", "U+{:04X}", *space as u32);
        assert_ne!(
            other.user_id, jdoe.user_id,
            "U+{:04X} took over jdoe",
            *space as u32
        );
        assert_eq!(other.groups, vec![group], "U+{:04X}", *space as u32);
    }
    // The NameID follows the same rule.
    c.execute(
        "UPDATE saml_jit.identity_provider SET user_key = 'name_id' WHERE entity_id = $1",
        &[&IDP],
    )
    .unwrap();
    let plain = login(&mut c, &mint_one(spec("mary")), None).unwrap();
    let spaced = login(&mut c, &mint_one(spec("mary\u{3000}")), None).unwrap();
    assert_ne!(plain.user_id, spaced.user_id);
    assert_eq!(spaced.subject, "mary\u{3000}");
}

#[test]
fn structural_bombs_are_refused_before_parsing() {
    let mut c = fresh_database("it_sec_bombs");
    trust_demo_idp(&mut c);
    let xml = to_xml(&mint_one(spec("bomb")));
    let inject = |junk: &str| {
        to_response(&xml.replacen(
            "<ns0:Status>",
            &format!("<ns0:Extensions>{junk}</ns0:Extensions><ns0:Status>"),
            1,
        ))
    };
    let declarations: String = (0..16)
        .map(|i| format!(" xmlns:p{i}=\"urn:p{i}\""))
        .collect();
    let namespace_bomb = format!(
        "{}{}",
        format!("<x{declarations}>").repeat(20),
        "</x>".repeat(20)
    );
    let attributes: String = (0..60_000).map(|i| format!(" a{i}=\"v\"")).collect();
    let attribute_bomb = format!("<x{attributes}/>");
    let wide = "<x/>".repeat(20_000);
    for (what, junk) in [
        ("namespace bomb", namespace_bomb),
        ("60,000 attributes", attribute_bomb),
        ("20,000 elements", wide),
    ] {
        let detail = assert_rejected(login(&mut c, &inject(&junk), None), "malformed");
        assert!(detail.contains("more than"), "{what}: {detail}");
    }
    let references =
        "<ds:Reference xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" URI=\"#a\"/>".repeat(10);
    assert_rejected(
        login(&mut c, &inject(&references), None),
        "reference_invalid",
    );
}

fn request_id(c: &mut Client) -> String {
    c.query_one("SELECT request_id FROM saml_jit_authn_request($1)", &[&IDP])
        .unwrap()
        .get(0)
}

fn set_idp_initiated(c: &mut Client, allowed: bool) {
    c.execute(
        "UPDATE saml_jit.identity_provider SET allow_idp_initiated = $2 WHERE entity_id = $1",
        &[&IDP, &allowed],
    )
    .unwrap();
}

#[test]
fn whether_a_response_answers_a_request_is_read_from_the_signed_assertion() {
    let mut c = fresh_database("it_sec_solicited");
    trust_demo_idp(&mut c);
    c.execute(
        "UPDATE saml_jit.identity_provider SET sso_url_redirect = 'https://idp.test.example/sso'
          WHERE entity_id = $1",
        &[&IDP],
    )
    .unwrap();
    for allowed in [false, true] {
        set_idp_initiated(&mut c, allowed);
        // An IdP-initiated assertion whose unsigned Response an attacker made
        // claim to answer an outstanding request.
        let request = request_id(&mut c);
        let xml = to_xml(&mint_one(spec(&format!("idp-init-{allowed}"))));
        let root = find_start_tag(&xml, "Response").unwrap();
        let name_end = root + xml[root..].find(' ').unwrap();
        let claimed = format!(
            "{} InResponseTo=\"{request}\"{}",
            &xml[..name_end],
            &xml[name_end..]
        );
        for passed in [None, Some(request.as_str())] {
            assert_rejected(
                login(&mut c, &to_response(&claimed), passed),
                "in_response_to_mismatch",
            );
        }
        // The application expects an answer; an IdP-initiated response is none.
        let plain = mint_one(spec(&format!("plain-{allowed}")));
        let detail = assert_rejected(
            login(&mut c, &plain, Some(&request)),
            "in_response_to_mismatch",
        );
        assert!(detail.contains("answers no request"), "{detail}");
        // A genuinely solicited response still works.
        let mut solicited = spec(&format!("solicited-{allowed}"));
        solicited["in_response_to"] = json!(request);
        login(&mut c, &mint_one(solicited), None).expect("solicited response");
    }
    // And IdP-initiated stays refused when not allowed, accepted when allowed.
    set_idp_initiated(&mut c, false);
    assert_rejected(login(&mut c, &mint_one(spec("u1")), None), "unsolicited");
    set_idp_initiated(&mut c, true);
    login(&mut c, &mint_one(spec("u2")), None).expect("IdP-initiated allowed");
}

#[test]
fn profile_musts_on_the_signed_assertion() {
    let mut c = fresh_database("it_sec_profile");
    trust_demo_idp(&mut c);
    let xml = to_xml(&mint_one(spec("musts")));
    // Control: re-signing an unchanged response keeps it valid.
    login(&mut c, &resign(&xml), None).expect("re-signed, unchanged");

    // A bearer confirmation without NotOnOrAfter (Conditions' removed too):
    // valid forever, and again once its replay row is purged.
    let forever = drop_attribute(
        &drop_attribute(&xml, "SubjectConfirmationData", "NotOnOrAfter"),
        "Conditions",
        "NotOnOrAfter",
    );
    let fresh = forever.replace(&assertion_id(&xml), "_forever1");
    let detail = assert_rejected(login(&mut c, &resign(&fresh), None), "subject_missing");
    assert!(detail.contains("NotOnOrAfter"), "{detail}");

    // No AuthnStatement: an attribute assertion is not a login.
    let unauthenticated =
        drop_element(&xml, "AuthnStatement").replace(&assertion_id(&xml), "_noauthn1");
    let detail = assert_rejected(login(&mut c, &resign(&unauthenticated), None), "malformed");
    assert!(detail.contains("AuthnStatement"), "{detail}");
}

#[test]
fn a_signed_response_must_name_its_destination() {
    let mut c = fresh_database("it_sec_destination");
    trust_demo_idp(&mut c);
    let mut signed = spec("dest");
    signed["sign_response"] = json!(true);
    signed["sign_assertion"] = json!(false);
    let xml = to_xml(&mint_one(signed));
    let nowhere = drop_attribute(&xml, "Response", "Destination");
    let detail = assert_rejected(
        login(&mut c, &resign(&nowhere), None),
        "destination_mismatch",
    );
    assert!(detail.contains("no Destination"), "{detail}");
    // Only the Response's signature obliges it: an unsigned Response around a
    // signed Assertion may omit Destination (Recipient is still checked).
    let unsigned_envelope =
        drop_attribute(&to_xml(&mint_one(spec("dest2"))), "Response", "Destination");
    login(&mut c, &to_response(&unsigned_envelope), None).expect("unsigned envelope");
}

#[test]
fn utf16_responses_are_read_with_the_same_checks() {
    let mut c = fresh_database("it_sec_utf16");
    trust_demo_idp(&mut c);
    let encode = |xml: &str, little_endian: bool| {
        let text = if xml.starts_with("<?xml") {
            xml.replacen("UTF-8", "UTF-16", 1)
                .replacen("utf-8", "UTF-16", 1)
        } else {
            format!("<?xml version=\"1.0\" encoding=\"UTF-16\"?>{xml}")
        };
        let mut bytes: Vec<u8> = if little_endian {
            vec![0xFF, 0xFE]
        } else {
            vec![0xFE, 0xFF]
        };
        for unit in text.encode_utf16() {
            bytes.extend(if little_endian {
                unit.to_le_bytes()
            } else {
                unit.to_be_bytes()
            });
        }
        B64.encode(bytes)
    };
    for (i, little_endian) in [true, false].into_iter().enumerate() {
        let mut s = spec(&format!("wide{i}"));
        s["attributes"]["sn"] = json!(["Doë 李"]);
        let xml = to_xml(&mint_one(s));
        let l = login(&mut c, &encode(&xml, little_endian), None).expect("UTF-16 response");
        assert_eq!(l.subject, format!("wide{i}"));
        assert!(
            l.attributes.to_string().contains("\"Doë 李\""),
            "{}",
            l.attributes
        );
        // Tampering is still caught.
        let tampered = xml.replace(&format!("wide{i}@example.com"), "evil@example.com");
        assert_ne!(tampered, xml);
        assert_rejected(
            login(&mut c, &encode(&tampered, little_endian), None),
            "signature_invalid",
        );
    }
}
