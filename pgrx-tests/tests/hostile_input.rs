//! Hostile and broken input: each refused with SQLSTATE 28000 and its reason,
//! never a crash or an internal error, and the session stays usable. A
//! Reference pointing at a file or a URL causes no file or network access.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use saml_jit_integration::*;

fn still_usable(c: &mut Client) {
    let one: i32 = c.query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
}

#[test]
fn broken_and_hostile_documents() {
    let mut c = fresh_database("it_hostile_docs");
    trust_demo_idp(&mut c);
    let valid = to_xml(&mint_one(spec("ada")));
    let truncated = &valid[..valid.len() / 2];
    let deep = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
    let xxe = "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><samlp:Response \
               xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\">&x;</samlp:Response>";
    let param_entity =
        "<!DOCTYPE r [<!ENTITY % p SYSTEM \"http://127.0.0.1:9/evil.dtd\"> %p;]><r/>";
    let cases: Vec<(String, &str)> = vec![
        ("definitely not base64 !!!".into(), "malformed"),
        (to_response("plain text, not XML"), "malformed"),
        (to_response(truncated), "malformed"),
        (to_response(&deep), "malformed"),
        (to_response(xxe), "dtd_forbidden"),
        (to_response(param_entity), "dtd_forbidden"),
        (to_response("<foo xmlns=\"urn:x\"/>"), "malformed"),
        (
            to_response(&valid.replace("urn:oasis:names:tc:SAML:2.0:protocol", "urn:evil")),
            "malformed",
        ),
        (String::new(), "malformed"),
    ];
    for (input, reason) in cases {
        assert_rejected(login(&mut c, &input, None), reason);
        still_usable(&mut c);
    }
    // 20 MB: refused by size before decoding (default limit 1 MB)...
    let huge = "A".repeat(20 * 1024 * 1024);
    assert_rejected(login(&mut c, &huge, None), "too_large");
    // ...and, with the limit raised, a 20 MB document is parsed: its size alone
    // is no reason to refuse it...
    c.batch_execute("SET saml_jit.max_response_bytes = 40000000")
        .unwrap();
    let padding = "y".repeat(20 * 1024 * 1024);
    let big = valid.replacen("<ns0:Status>", &format!("<ns0:Extensions><saml:Junk xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\">{padding}</saml:Junk></ns0:Extensions><ns0:Status>"), 1);
    assert!(big.len() > 15 * 1024 * 1024);
    let r = login(&mut c, &to_response(&big), None);
    // Extensions are unsigned and ignored; the genuine signed assertion still verifies.
    assert!(r.is_ok(), "{r:?}");
    // ...but the structural limits hold whatever the size limit: 233,000
    // elements are refused before a DOM is built.
    let elements =
        "<saml:Attribute Name=\"x\"><saml:AttributeValue>y</saml:AttributeValue></saml:Attribute>"
            .repeat(20 * 1024 * 1024 / 90);
    let wide = valid.replacen("<ns0:Status>", &format!("<ns0:Extensions><saml:Junk xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\">{elements}</saml:Junk></ns0:Extensions><ns0:Status>"), 1);
    let detail = assert_rejected(login(&mut c, &to_response(&wide), None), "malformed");
    assert!(detail.contains("more than 5000 elements"), "{detail}");
    still_usable(&mut c);
    c.batch_execute("RESET saml_jit.max_response_bytes")
        .unwrap();
    // After all of that, a genuine login works on the same session.
    login(&mut c, &mint_one(spec("grace")), None).expect("session still works");
}

#[test]
fn references_to_files_and_urls_touch_nothing() {
    let mut c = fresh_database("it_hostile_refs");
    trust_demo_idp(&mut c);
    // A FIFO: opening it for reading would block until a writer appears, so a
    // backend that tried would hit the statement timeout instead of answering.
    let dir = std::env::temp_dir().join(format!("saml_jit_fifo_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let fifo = dir.join("reference");
    let _ = std::fs::remove_file(&fifo);
    let status = std::process::Command::new("mkfifo")
        .arg("-m")
        .arg("666")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!(
        "http://127.0.0.1:{}/evil.xml",
        listener.local_addr().unwrap().port()
    );
    c.batch_execute("SET statement_timeout = '10s'").unwrap();
    let targets = [
        format!("file://{}", fifo.display()),
        fifo.display().to_string(),
        "file:///etc/passwd".to_string(),
        url,
        String::new(),
    ];
    for target in &targets {
        let xml = to_xml(&mint_one(spec("ref")));
        let at = xml.find("URI=\"").unwrap() + 5;
        let end = at + xml[at..].find('"').unwrap();
        let redirected = format!("{}{target}{}", &xml[..at], &xml[end..]);
        let detail = assert_rejected(
            login(&mut c, &to_response(&redirected), None),
            "reference_invalid",
        );
        assert!(detail.contains("only same-document references"), "{detail}");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        listener.accept().is_err(),
        "the database backend connected to the URL named by a Reference"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
