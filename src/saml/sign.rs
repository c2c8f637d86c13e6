//! Enveloped XML signatures on the messages this SP sends by HTTP-POST (the
//! AuthnRequest): RSA-SHA256 over SHA-256, exclusive canonicalization, one
//! Reference to the root element's ID, the SP certificate in KeyInfo. The
//! signature template is written here; xmlsec computes digest and value.

use std::ffi::CStr;
use std::ptr;

use xmlsec::bindings as x;

use super::decrypt::SpKey;
use super::dom::Document;

const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";

/// The signature template, placed right after the root's `saml:Issuer` (the
/// position the SAML schema gives `ds:Signature` in every protocol message).
fn template(id: &str, certificate_b64: Option<&str>) -> String {
    let key_info = certificate_b64
        .map(|c| {
            format!("<ds:KeyInfo><ds:X509Data><ds:X509Certificate>{c}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>")
        })
        .unwrap_or_default();
    format!(
        "<ds:Signature xmlns:ds=\"{NS_DSIG}\"><ds:SignedInfo>\
         <ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>\
         <ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>\
         <ds:Reference URI=\"#{id}\"><ds:Transforms>\
         <ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>\
         <ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></ds:Transforms>\
         <ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/>\
         <ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo>\
         <ds:SignatureValue></ds:SignatureValue>{key_info}</ds:Signature>"
    )
}

/// Signs `xml` (a message this SP built: its root carries `ID="{id}"` and
/// a `</saml:Issuer>`) with the SP key. `certificate_b64` is the DER of the
/// SP certificate in base64, published in KeyInfo when given.
pub fn sign_enveloped(
    xml: &str,
    id: &str,
    key: &SpKey,
    certificate_b64: Option<&str>,
) -> Result<String, String> {
    const ISSUER_END: &str = "</saml:Issuer>";
    let at = xml
        .find(ISSUER_END)
        .ok_or("the message has no saml:Issuer to place the signature after")?
        + ISSUER_END.len();
    let with_template = format!(
        "{}{}{}",
        &xml[..at],
        template(id, certificate_b64),
        &xml[at..]
    );
    let doc = Document::parse(with_template.as_bytes()).map_err(|r| r.detail)?;
    let root = doc.root().ok_or("the message has no root element")?;
    doc.register_id(root).map_err(|r| r.detail)?;
    let signature = root
        .child(NS_DSIG, "Signature")
        .ok_or("the signature template was not placed")?;
    // SAFETY: the context is destroyed on every path, and the key (owned by
    // `key`) is detached from it first.
    unsafe {
        let ctx = x::xmlSecDSigCtxCreate(ptr::null_mut());
        if ctx.is_null() {
            return Err("xmlsec could not allocate a signature context".into());
        }
        (*ctx).enabledReferenceUris = x::xmlSecTransformUriTypeSameDocument as _;
        (*ctx).signKey = key.raw();
        let rc = x::xmlSecDSigCtxSign(ctx, signature.ptr);
        (*ctx).signKey = ptr::null_mut();
        x::xmlSecDSigCtxDestroy(ctx);
        if rc < 0 {
            return Err("xmlsec could not sign the message with the SP key".into());
        }
        serialize(&doc)
    }
}

/// The document as UTF-8 text, without an XML declaration.
unsafe fn serialize(doc: &Document) -> Result<String, String> {
    let root = x::xmlDocGetRootElement(doc.raw());
    let buffer = x::xmlBufferCreate();
    if buffer.is_null() {
        return Err("libxml2 could not allocate a buffer".into());
    }
    let written = x::xmlNodeDump(buffer, doc.raw(), root, 0, 0);
    let text = (written >= 0)
        .then(|| CStr::from_ptr(x::xmlBufferContent(buffer) as *const _))
        .map(|c| c.to_string_lossy().into_owned());
    x::xmlBufferFree(buffer);
    text.ok_or_else(|| "libxml2 could not write the signed message".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saml::request::{authn_request_xml, AuthnRequest};

    const SP_KEY: &str = include_str!("../../pgrx-tests/fixtures/sp.key");

    #[test]
    fn the_signature_follows_the_issuer_and_verifies() {
        let xml = authn_request_xml(&AuthnRequest {
            id: "_r1",
            issue_instant: "2026-01-01T00:00:00Z",
            destination: "https://idp/sso",
            acs_url: "https://sp/acs",
            sp_entity_id: "urn:sp",
            ..Default::default()
        })
        .unwrap();
        let key = SpKey::from_pem(SP_KEY).unwrap();
        let signed = sign_enveloped(&xml, "_r1", &key, Some("MIIB")).unwrap();
        let issuer = signed.find("</saml:Issuer>").unwrap();
        assert_eq!(
            signed[issuer + 14..].find("<ds:Signature"),
            Some(0),
            "{signed}"
        );
        let value_start = signed.find("<ds:SignatureValue>").unwrap() + 19;
        let value_end = signed.find("</ds:SignatureValue>").unwrap();
        assert!(
            value_end - value_start >= 344,
            "an RSA-2048 SignatureValue: {signed}"
        );
        assert!(signed.contains("<ds:X509Certificate>MIIB</ds:X509Certificate>"));
        assert!(!signed.contains("<ds:DigestValue></ds:DigestValue>"));
    }
}
