//! SP-initiated login: the AuthnRequest with its options (ForceAuthn,
//! IsPassive, NameIDPolicy, RequestedAuthnContext) and its HTTP-Redirect
//! binding URL (raw DEFLATE, base64, URL-encoded; optionally signed with
//! RSA-SHA256 over the query string as the binding specifies). The HTTP-POST
//! binding's enveloped signature is sign.rs. Pure Rust.

use std::io::Write;

use base64::Engine;

pub const SIG_ALG_RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

/// Signs the query octets of the HTTP-Redirect binding with the SP key.
pub type QuerySigner<'a> = &'a dyn Fn(&[u8]) -> Result<Vec<u8>, String>;

#[derive(Default)]
pub struct AuthnRequest<'a> {
    pub id: &'a str,
    pub issue_instant: &'a str,
    pub destination: &'a str,
    pub acs_url: &'a str,
    pub sp_entity_id: &'a str,
    pub force_authn: bool,
    pub is_passive: bool,
    /// NameIDPolicy Format; None omits NameIDPolicy (the IdP chooses).
    pub name_id_policy_format: Option<&'a str>,
    /// AuthnContextClassRefs compared "exact"; empty omits the element.
    pub requested_authn_context: &'a [String],
}

pub(crate) fn escape(v: &str) -> String {
    v.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Whether XML 1.0 can carry `c` at all (production Char): the C0 controls
/// but tab, LF and CR cannot appear in a document, not even escaped.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// The AuthnRequest XML, or which configured value XML cannot carry.
pub fn authn_request_xml(r: &AuthnRequest<'_>) -> Result<String, String> {
    let mut fields = vec![
        ("request ID", r.id),
        ("IssueInstant", r.issue_instant),
        (
            "IdP SSO URL (identity_provider.sso_url_redirect or sso_url_post)",
            r.destination,
        ),
        ("ACS URL (service_provider.acs_url)", r.acs_url),
        ("SP entity ID (service_provider.entity_id)", r.sp_entity_id),
        (
            "NameIDPolicy format (identity_provider.name_id_policy_format)",
            r.name_id_policy_format.unwrap_or_default(),
        ),
    ];
    for class in r.requested_authn_context {
        fields.push((
            "authentication context class (identity_provider.requested_authn_context)",
            class,
        ));
    }
    for (what, value) in fields {
        if let Some(c) = value.chars().find(|c| !is_xml_char(*c)) {
            return Err(format!(
                "the {what} contains the character U+{:04X}, which no XML document can carry",
                c as u32
            ));
        }
    }
    let mut xml = format!(
        "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
         xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{}\" Version=\"2.0\" \
         IssueInstant=\"{}\" Destination=\"{}\" AssertionConsumerServiceURL=\"{}\" \
         ProtocolBinding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\"{}{}>\
         <saml:Issuer>{}</saml:Issuer>",
        escape(r.id),
        escape(r.issue_instant),
        escape(r.destination),
        escape(r.acs_url),
        if r.force_authn {
            " ForceAuthn=\"true\""
        } else {
            ""
        },
        if r.is_passive {
            " IsPassive=\"true\""
        } else {
            ""
        },
        escape(r.sp_entity_id)
    );
    // Schema order: Issuer, (Signature), NameIDPolicy, RequestedAuthnContext.
    if let Some(format) = r.name_id_policy_format {
        xml.push_str(&format!(
            "<samlp:NameIDPolicy Format=\"{}\" AllowCreate=\"true\"/>",
            escape(format)
        ));
    }
    if !r.requested_authn_context.is_empty() {
        xml.push_str("<samlp:RequestedAuthnContext Comparison=\"exact\">");
        for class in r.requested_authn_context {
            xml.push_str(&format!(
                "<saml:AuthnContextClassRef>{}</saml:AuthnContextClassRef>",
                escape(class)
            ));
        }
        xml.push_str("</samlp:RequestedAuthnContext>");
    }
    xml.push_str("</samlp:AuthnRequest>");
    Ok(xml)
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
pub fn url_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len() * 3);
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The IdP's URL with the message as `parameter` (SAMLRequest or
/// SAMLResponse), and RelayState, SigAlg, Signature. `sign` signs the query
/// octets with the SP key when the message is signed.
pub fn redirect_url(
    sso_url: &str,
    parameter: &str,
    xml: &str,
    relay_state: Option<&str>,
    sign: Option<QuerySigner<'_>>,
) -> Result<String, String> {
    let mut deflater =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    deflater
        .write_all(xml.as_bytes())
        .map_err(|e| e.to_string())?;
    let deflated = deflater.finish().map_err(|e| e.to_string())?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut query = format!("{parameter}={}", url_encode(&b64.encode(deflated)));
    if let Some(rs) = relay_state {
        query.push_str(&format!("&RelayState={}", url_encode(rs)));
    }
    if let Some(sign) = sign {
        query.push_str(&format!("&SigAlg={}", url_encode(SIG_ALG_RSA_SHA256)));
        let signature = sign(query.as_bytes())?;
        query.push_str(&format!(
            "&Signature={}",
            url_encode(&b64.encode(signature))
        ));
    }
    let sep = if sso_url.contains('?') { '&' } else { '?' };
    Ok(format!("{sso_url}{sep}{query}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn url_decode(v: &str) -> String {
        let bytes = v.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_redirect_url_inflates_back_to_the_request() {
        let xml = authn_request_xml(&AuthnRequest {
            id: "_abc",
            issue_instant: "2026-01-01T00:00:00Z",
            destination: "https://idp/sso",
            acs_url: "https://sp/acs?x=1&y=2",
            sp_entity_id: "urn:sp",
            ..Default::default()
        })
        .unwrap();
        assert!(xml.contains("AssertionConsumerServiceURL=\"https://sp/acs?x=1&amp;y=2\""));
        assert!(
            !xml.contains("NameIDPolicy") && !xml.contains("ForceAuthn"),
            "{xml}"
        );
        let url = redirect_url(
            "https://idp/sso?tenant=7",
            "SAMLRequest",
            &xml,
            Some("back to /x?y"),
            None,
        )
        .unwrap();
        assert!(
            url.starts_with("https://idp/sso?tenant=7&SAMLRequest="),
            "{url}"
        );
        let (_, query) = url.split_once("&SAMLRequest=").unwrap();
        let (req, relay) = query.split_once("&RelayState=").unwrap();
        assert_eq!(url_decode(relay), "back to /x?y");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(url_decode(req))
            .unwrap();
        let mut inflated = String::new();
        flate2::read::DeflateDecoder::new(&raw[..])
            .read_to_string(&mut inflated)
            .unwrap();
        assert_eq!(inflated, xml);
    }

    #[test]
    fn values_xml_cannot_carry_are_refused() {
        let request = |sp_entity_id| AuthnRequest {
            id: "_abc",
            issue_instant: "2026-01-01T00:00:00Z",
            destination: "https://idp/sso",
            acs_url: "https://sp/acs",
            sp_entity_id,
            ..Default::default()
        };
        let err = authn_request_xml(&request("urn:sp\u{1}")).unwrap_err();
        assert!(
            err.contains("SP entity ID") && err.contains("U+0001"),
            "{err}"
        );
        assert!(authn_request_xml(&request("urn:sp\u{FFFF}")).is_err());
        assert!(authn_request_xml(&request("urn:sp\tç€😀")).is_ok());
        let classes = ["urn:x\u{0}".to_string()];
        let err = authn_request_xml(&AuthnRequest {
            requested_authn_context: &classes,
            ..request("urn:sp")
        })
        .unwrap_err();
        assert!(err.contains("requested_authn_context"), "{err}");
    }

    #[test]
    fn options_are_written_in_schema_order() {
        let classes = [
            "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport".to_string(),
            "urn:a&b".to_string(),
        ];
        let xml = authn_request_xml(&AuthnRequest {
            id: "_abc",
            issue_instant: "2026-01-01T00:00:00Z",
            destination: "https://idp/sso",
            acs_url: "https://sp/acs",
            sp_entity_id: "urn:sp",
            force_authn: true,
            is_passive: true,
            name_id_policy_format: Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"),
            requested_authn_context: &classes,
        })
        .unwrap();
        assert!(
            xml.contains(" ForceAuthn=\"true\" IsPassive=\"true\">"),
            "{xml}"
        );
        let issuer = xml.find("</saml:Issuer>").unwrap();
        let policy = xml.find("<samlp:NameIDPolicy Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress\" AllowCreate=\"true\"/>").unwrap();
        let context = xml
            .find("<samlp:RequestedAuthnContext Comparison=\"exact\">")
            .unwrap();
        assert!(issuer < policy && policy < context, "{xml}");
        assert!(xml.contains("<saml:AuthnContextClassRef>urn:a&amp;b</saml:AuthnContextClassRef>"));
    }
}
