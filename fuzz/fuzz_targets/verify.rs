//! A whole response, verified with a trusted key (the demo IdP certificate)
//! and validated: receive -> verify -> accept. Seeds are real responses, so
//! the fuzzer starts from documents that get deep into xmlsec.
#![no_main]
include!("core.rs");

use std::rc::Rc;
use std::sync::OnceLock;

use base64::Engine;

fn key() -> Vec<Rc<saml::verify::TrustedKey>> {
    static DER: OnceLock<Vec<u8>> = OnceLock::new();
    let der = DER.get_or_init(|| {
        let pem = include_str!("../../pgrx-tests/fixtures/demo-idp.crt");
        saml::certificate::parse_certificate(pem)
            .expect("demo certificate")
            .der
    });
    vec![Rc::new(
        saml::verify::TrustedKey::from_certificate_der(1, der).expect("key"),
    )]
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let input = base64::engine::general_purpose::STANDARD.encode(data);
    let Ok(incoming) = saml::response::receive(&input, 4 * 1024 * 1024) else {
        return;
    };
    let keys = key();
    for allow_sha1 in [false, true] {
        if let Ok(verified) = saml::response::verify(&incoming, &keys, allow_sha1, None) {
            let policy = saml::validate::Policy {
                idp_entity_id: incoming.claimed_issuer.clone(),
                sp_entity_id: "https://app.test.example/sp".into(),
                acs_url: "https://app.test.example/acs".into(),
                allow_sha1,
                require_audience: false,
                allow_idp_initiated: true,
                clock_skew: chrono::Duration::minutes(3),
                user_key: "name_id".into(),
            };
            let _ = saml::response::accept(&verified, &policy, chrono::Utc::now(), None);
        }
    }
});
