//! IdP metadata import: the parser behind saml_jit_import_idp_metadata.
#![no_main]
include!("core.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = saml::metadata::parse_idp_metadata(&text, None);
    let _ = saml::metadata::parse_idp_metadata(&text, Some("https://idp.example/"));
});
