//! The POSTed value: base64, size, UTF-16 transcoding, structural pre-check.
#![no_main]
include!("core.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = saml::decode::decode_response(&text, 1024 * 1024);
});
