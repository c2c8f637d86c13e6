//! SP-initiated login: the AuthnRequest and its HTTP-Redirect binding URL
//! (raw DEFLATE, base64, URL-encoded; optionally signed with RSA-SHA256 over
//! the query string as the binding specifies). Pure Rust.

use std::io::Write;

use base64::Engine;

pub const SIG_ALG_RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

/// Signs the query octets of the HTTP-Redirect binding with the SP key.
pub type QuerySigner<'a> = &'a dyn Fn(&[u8]) -> Result<Vec<u8>, String>;

pub struct AuthnRequest<'a> {
    pub id: &'a str,
    pub issue_instant: &'a str,
    pub destination: &'a str,
    pub acs_url: &'a str,
    pub sp_entity_id: &'a str,
}

fn escape(v: &str) -> String {
    v.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Whether XML 1.0 can carry `c` at all (production Char): the C0 controls
/// but tab, LF and CR cannot appear in a document, not even escaped.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// The AuthnRequest XML, or which configured value XML cannot carry.
pub fn authn_request_xml(r: &AuthnRequest<'_>) -> Result<String, String> {
    let fields = [
        ("request ID", r.id),
        ("IssueInstant", r.issue_instant),
        (
            "IdP SSO URL (identity_provider.sso_url_redirect)",
            r.destination,
        ),
        ("ACS URL (service_provider.acs_url)", r.acs_url),
        ("SP entity ID (service_provider.entity_id)", r.sp_entity_id),
    ];
    for (what, value) in fields {
        if let Some(c) = value.chars().find(|c| !is_xml_char(*c)) {
            return Err(format!(
                "the {what} contains the character U+{:04X}, which no XML document can carry",
                c as u32
            ));
        }
    }
    Ok(format!(
        "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
         xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{}\" Version=\"2.0\" \
         IssueInstant=\"{}\" Destination=\"{}\" AssertionConsumerServiceURL=\"{}\" \
         ProtocolBinding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\">\
         <saml:Issuer>{}</saml:Issuer><samlp:NameIDPolicy AllowCreate=\"true\"/></samlp:AuthnRequest>",
        escape(r.id),
        escape(r.issue_instant),
        escape(r.destination),
        escape(r.acs_url),
        escape(r.sp_entity_id)
    ))
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

/// The IdP's SSO URL with SAMLRequest (and RelayState, SigAlg, Signature).
/// `sign` signs the query octets with the SP key when requests are signed.
pub fn redirect_url(
    sso_url: &str,
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
    let mut query = format!("SAMLRequest={}", url_encode(&b64.encode(deflated)));
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
        })
        .unwrap();
        assert!(xml.contains("AssertionConsumerServiceURL=\"https://sp/acs?x=1&amp;y=2\""));
        let url =
            redirect_url("https://idp/sso?tenant=7", &xml, Some("back to /x?y"), None).unwrap();
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
        };
        let err = authn_request_xml(&request("urn:sp\u{1}")).unwrap_err();
        assert!(
            err.contains("SP entity ID") && err.contains("U+0001"),
            "{err}"
        );
        assert!(authn_request_xml(&request("urn:sp\u{FFFF}")).is_err());
        assert!(authn_request_xml(&request("urn:sp\tç€😀")).is_ok());
    }
}
