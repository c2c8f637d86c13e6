//! Raw XML bytes through the structural pre-check, then (when it passes)
//! libxml2: whatever the pre-check admits must parse in bounded time.
#![no_main]
include!("core.rs");

use saml::shape::{check_shape, Limits};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(xml) = saml::decode::to_utf8(data.to_vec()) else {
        return;
    };
    if check_shape(&xml, &Limits::RESPONSE).is_ok() {
        if let Ok(doc) = saml::dom::Document::parse(&xml) {
            if let Some(root) = doc.root() {
                let _ = root.descendants().len();
            }
        }
        let _ = saml::tree::Element::parse(&xml);
    }
});
