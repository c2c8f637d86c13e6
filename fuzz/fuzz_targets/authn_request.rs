//! AuthnRequests are built from administrator and application input (entity
//! IDs, URLs, RelayState): whatever that input is, the request must be one
//! well-formed XML element that the structural pre-check admits, and its
//! HTTP-Redirect URL must inflate back to exactly that request.
#![no_main]
include!("core.rs");

use std::io::Read;

use base64::Engine;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\u{1}');
    let (Some(issuer), Some(acs), Some(destination)) = (parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let relay_state = parts.next();
    let request = saml::request::AuthnRequest {
        id: "_fuzz1",
        issue_instant: "2026-11-30T10:00:00Z",
        destination,
        acs_url: acs,
        sp_entity_id: issuer,
        ..Default::default()
    };
    // Values XML cannot carry are refused (and said so), never sent.
    let Ok(xml) = saml::request::authn_request_xml(&request) else {
        assert!(
            [issuer, acs, destination]
                .iter()
                .any(|v| v.chars().any(|c| c < ' ' && !matches!(c, '\t' | '\n' | '\r')
                    || matches!(c, '\u{FFFE}' | '\u{FFFF}'))),
            "a request was refused although every value is XML text"
        );
        return;
    };
    saml::shape::check_shape(xml.as_bytes(), &saml::shape::Limits::RESPONSE)
        .expect("our own AuthnRequest passes our structural check");
    // libxml2 is strict where quick-xml is lenient (characters XML forbids).
    saml::dom::Document::parse(xml.as_bytes()).expect("our own AuthnRequest is well-formed XML");
    let url = saml::request::redirect_url(destination, &xml, relay_state, None)
        .expect("redirect URL");
    // The parameters this function added come after the SSO URL given.
    let query = &url[destination.len()..];
    let encoded = query
        .split(['&', '?'])
        .find_map(|p| p.strip_prefix("SAMLRequest="))
        .expect("SAMLRequest parameter");
    let deflated = base64::engine::general_purpose::STANDARD
        .decode(percent_decode(encoded))
        .expect("base64");
    let mut inflated = String::new();
    flate2::read::DeflateDecoder::new(&deflated[..])
        .read_to_string(&mut inflated)
        .expect("inflate");
    assert_eq!(inflated, xml);
});

fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}
