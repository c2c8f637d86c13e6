//! Single Logout messages (SAML core 3.7; bindings 3.4 and 3.5): an IdP's
//! LogoutRequest or LogoutResponse as the application received it, over
//! HTTP-Redirect (deflated, with a detached signature over the query octets
//! exactly as received) or HTTP-POST (an enveloped XML signature), and the
//! ones this SP writes. Every value is read from what the signature covered.
//! Pure Rust (plus OpenSSL and libxmlsec1), no PostgreSQL.

use std::io::Read;
use std::rc::Rc;

use base64::Engine;

use super::decode::{decode_response, to_utf8};
use super::dom::{Document, NS_ASSERTION, NS_PROTOCOL};
use super::request::{escape, is_xml_char};
use super::response::{check_unique_ids, decrypt_element, signature_of};
use super::shape::{check_shape, Limits};
use super::text::xml_trim;
use super::tree::Element;
use super::verify::{verify_signature, TrustedKey};
use super::{reject, Reason, Reject};
use crate::saml::decrypt::SpKey;

const STATUS_PREFIX: &str = "urn:oasis:names:tc:SAML:2.0:status:";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Request,
    Response,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Request => "logout_request",
            Kind::Response => "logout_response",
        }
    }
}

/// The detached signature of the HTTP-Redirect binding.
struct Detached {
    /// `SAMLRequest=..&RelayState=..&SigAlg=..` as received (still
    /// URL-encoded): what the IdP signed.
    signed_octets: String,
    sig_alg: Option<String>,
    signature: Option<String>,
}

/// A decoded, well-formed logout message whose IdP is not yet known.
pub struct Received {
    doc: Document,
    xml: Vec<u8>,
    pub kind: Kind,
    /// The Issuer as the message claims it: only picks the IdP whose keys
    /// must then verify the signature.
    pub claimed_issuer: String,
    pub claimed_id: Option<String>,
    /// The RelayState of the query string (HTTP-Redirect), URL-decoded.
    pub relay_state: Option<String>,
    detached: Option<Detached>,
}

impl Received {
    /// The namespaces in scope at the root's EncryptedID: its plaintext may
    /// use their prefixes without declaring them.
    pub fn encrypted_id_namespaces(&self) -> Vec<(String, String)> {
        self.doc
            .root()
            .and_then(|r| r.child(NS_ASSERTION, "EncryptedID"))
            .map(|n| n.in_scope_namespaces())
            .unwrap_or_default()
    }

    pub fn binding(&self) -> &'static str {
        if self.detached.is_some() {
            "redirect"
        } else {
            "post"
        }
    }
}

/// The query string's parameters, raw (URL-encoded) as received.
#[derive(Default)]
struct Query<'a> {
    message: Option<(&'a str, &'a str)>,
    relay_state: Option<&'a str>,
    sig_alg: Option<&'a str>,
    signature: Option<&'a str>,
}

fn parse_query(query: &str) -> Result<Query<'_>, Reject> {
    let query = query.strip_prefix('?').unwrap_or(query);
    let mut q = Query::default();
    let twice = |name: &str| {
        reject(
            Reason::Malformed,
            format!("the query string carries {name} more than once"),
        )
    };
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        let slot = match name {
            "SAMLRequest" | "SAMLResponse" => {
                if q.message.is_some() {
                    return Err(twice("SAMLRequest/SAMLResponse"));
                }
                q.message = Some((name, value));
                continue;
            }
            "RelayState" => &mut q.relay_state,
            "SigAlg" => &mut q.sig_alg,
            "Signature" => &mut q.signature,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(twice(name));
        }
    }
    Ok(q)
}

/// Percent-decoding; `plus_is_space` for form values that are text (a
/// base64 value keeps its `+`).
fn url_decode(value: &str, plus_is_space: bool) -> Result<String, Reject> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = value
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        reject(Reason::Malformed, "the query string has a broken %-escape")
                    })?;
                out.push(hex);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| reject(Reason::Malformed, "the query string is not UTF-8"))
}

/// The base64 of a deflated message (HTTP-Redirect) to its XML, reading at
/// most `max_bytes` of output: a small input cannot inflate into unbounded
/// work.
fn inflate(b64: &str, max_bytes: usize) -> Result<Vec<u8>, Reject> {
    if b64.len() > max_bytes {
        return Err(reject(
            Reason::TooLarge,
            format!(
                "the message is {} bytes of base64; saml_jit.max_response_bytes allows {max_bytes}",
                b64.len()
            ),
        ));
    }
    let compact: Vec<u8> = b64.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let deflated = base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .map_err(|e| {
            reject(
                Reason::Malformed,
                format!("the message is not base64 ({e})"),
            )
        })?;
    let mut xml = Vec::new();
    flate2::read::DeflateDecoder::new(&deflated[..])
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut xml)
        .map_err(|e| {
            reject(
                Reason::Malformed,
                format!(
                    "the message is not DEFLATE-compressed as the HTTP-Redirect binding requires ({e}); \
                     a message that came by HTTP-POST is passed without query_string"
                ),
            )
        })?;
    if xml.len() > max_bytes {
        return Err(reject(
            Reason::TooLarge,
            format!(
                "the message inflates to more than saml_jit.max_response_bytes ({max_bytes}) bytes"
            ),
        ));
    }
    let xml = to_utf8(xml)?;
    check_shape(&xml, &Limits::RESPONSE)?;
    Ok(xml)
}

/// Reads a logout message as received: `message` is the SAMLRequest or
/// SAMLResponse value, `query` the raw query string of an HTTP-Redirect
/// (then `message` may be None: it is taken from the query string).
pub fn receive(
    message: Option<&str>,
    query: Option<&str>,
    max_bytes: usize,
) -> Result<Received, Reject> {
    let (xml, detached, relay_state, parameter) = match query {
        Some(query) => {
            if query.len() > 2 * max_bytes {
                return Err(reject(
                    Reason::TooLarge,
                    "the query string is larger than saml_jit.max_response_bytes allows",
                ));
            }
            let q = parse_query(query)?;
            let (parameter, raw) = q.message.ok_or_else(|| {
                reject(
                    Reason::Malformed,
                    "the query string carries neither SAMLRequest nor SAMLResponse",
                )
            })?;
            let value = url_decode(raw, false)?;
            if let Some(m) = message {
                let same = |s: &str| -> String {
                    s.chars()
                        .filter(|c| !matches!(c, '\r' | '\n'))
                        .map(|c| if c == ' ' { '+' } else { c })
                        .collect()
                };
                if same(m) != same(&value) {
                    return Err(reject(
                        Reason::Malformed,
                        format!("message is not the {parameter} of query_string; pass both from the same request"),
                    ));
                }
            }
            let mut signed_octets = format!("{parameter}={raw}");
            if let Some(rs) = q.relay_state {
                signed_octets.push_str(&format!("&RelayState={rs}"));
            }
            if let Some(alg) = q.sig_alg {
                signed_octets.push_str(&format!("&SigAlg={alg}"));
            }
            let detached = Detached {
                signed_octets,
                sig_alg: q.sig_alg.map(|a| url_decode(a, true)).transpose()?,
                signature: q.signature.map(|s| url_decode(s, false)).transpose()?,
            };
            let relay_state = q.relay_state.map(|r| url_decode(r, true)).transpose()?;
            (
                inflate(&value, max_bytes)?,
                Some(detached),
                relay_state,
                Some(parameter),
            )
        }
        None => {
            let message = message.ok_or_else(|| {
                reject(
                    Reason::Malformed,
                    "no message: pass the SAMLRequest or SAMLResponse value (and, for HTTP-Redirect, the query string)",
                )
            })?;
            (decode_response(message, max_bytes)?, None, None, None)
        }
    };
    let doc = Document::parse(&xml)?;
    let root = doc
        .root()
        .ok_or_else(|| reject(Reason::Malformed, "the document has no root element"))?;
    let kind = if root.is(NS_PROTOCOL, "LogoutRequest") {
        Kind::Request
    } else if root.is(NS_PROTOCOL, "LogoutResponse") {
        Kind::Response
    } else {
        return Err(reject(
            Reason::Malformed,
            format!(
                "the root element is {}, expected samlp:LogoutRequest or samlp:LogoutResponse in namespace {NS_PROTOCOL}",
                root.local_name()
            ),
        ));
    };
    let expected_parameter = match kind {
        Kind::Request => "SAMLRequest",
        Kind::Response => "SAMLResponse",
    };
    if parameter.is_some_and(|p| p != expected_parameter) {
        return Err(reject(
            Reason::Malformed,
            format!("a {} must come as {expected_parameter}", root.local_name()),
        ));
    }
    let claimed_issuer = match root.child(NS_ASSERTION, "Issuer") {
        Some(n) if !n.children().is_empty() => {
            return Err(reject(
                Reason::Malformed,
                "the Issuer element contains child elements",
            ))
        }
        Some(n) => xml_trim(&n.text()).to_string(),
        None => String::new(),
    };
    if claimed_issuer.is_empty() {
        return Err(reject(
            Reason::UnknownIssuer,
            "the logout message names no Issuer, so no trusted IdP can be chosen",
        ));
    }
    let claimed_id = root.attr("ID");
    Ok(Received {
        doc,
        xml,
        kind,
        claimed_issuer,
        claimed_id,
        relay_state,
        detached,
    })
}

/// A verified logout message: the element tree of the signed bytes, and the
/// certificate that verified them.
pub struct Verified {
    pub tree: Element,
    pub certificate_id: i64,
}

/// The algorithms the HTTP-Redirect binding's SigAlg may name.
fn query_digest(sig_alg: &str, allow_sha1: bool) -> Result<openssl::hash::MessageDigest, Reject> {
    use openssl::hash::MessageDigest;
    match sig_alg {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => Ok(MessageDigest::sha256()),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => Ok(MessageDigest::sha384()),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => Ok(MessageDigest::sha512()),
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1" if allow_sha1 => Ok(MessageDigest::sha1()),
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1" => Err(reject(
            Reason::AlgorithmForbidden,
            "SigAlg is RSA-SHA1, which this IdP may not use (identity_provider.allow_sha1 = false)",
        )),
        other => Err(reject(
            Reason::AlgorithmForbidden,
            format!("SigAlg {other:?} is not accepted (RSA with SHA-256, SHA-384 or SHA-512)"),
        )),
    }
}

fn no_keys() -> Reject {
    reject(
        Reason::SignatureInvalid,
        "this IdP has no usable signing certificate in saml_jit.idp_certificate",
    )
}

/// Checks the message's signature with the IdP's trusted keys: the
/// detached one of HTTP-Redirect, or the root's enveloped one of HTTP-POST.
pub fn verify(
    received: &Received,
    keys: &[Rc<TrustedKey>],
    allow_sha1: bool,
) -> Result<Verified, Reject> {
    if keys.is_empty() {
        return Err(no_keys());
    }
    let Some(detached) = &received.detached else {
        return verify_enveloped(received, keys, allow_sha1);
    };
    let (Some(sig_alg), Some(signature)) = (&detached.sig_alg, &detached.signature) else {
        return Err(reject(
            Reason::Unsigned,
            "the logout message is not signed: an HTTP-Redirect message carries SigAlg and Signature \
             in its query string (SAML profiles 4.4.4 require a signature)",
        ));
    };
    let digest = query_digest(sig_alg, allow_sha1)?;
    let compact: Vec<u8> = signature
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let signature = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| {
            reject(
                Reason::SignatureInvalid,
                "the Signature parameter is not base64",
            )
        })?;
    for key in keys {
        let Some(public_key) = &key.public_key else {
            continue;
        };
        let verified = openssl::sign::Verifier::new(digest, public_key)
            .and_then(|mut v| v.verify_oneshot(&signature, detached.signed_octets.as_bytes()))
            .unwrap_or(false);
        if verified {
            return Ok(Verified {
                tree: Element::parse(&received.xml)?,
                certificate_id: key.certificate_id,
            });
        }
    }
    Err(reject(
        Reason::SignatureInvalid,
        format!(
            "the query string's signature does not verify with any of the IdP's {} active certificate(s) \
             (it covers SAMLRequest/SAMLResponse, RelayState and SigAlg exactly as received: pass the raw query string)",
            keys.len()
        ),
    ))
}

fn verify_enveloped(
    received: &Received,
    keys: &[Rc<TrustedKey>],
    allow_sha1: bool,
) -> Result<Verified, Reject> {
    let doc = &received.doc;
    let root = doc.root().expect("receive checked the root");
    let signature = signature_of(root)?.ok_or_else(|| {
        reject(
            Reason::Unsigned,
            format!(
                "the {} is not signed (SAML profiles 4.4.4 require a signature)",
                root.local_name()
            ),
        )
    })?;
    check_unique_ids(root, &[root])?;
    doc.register_id(root)?;
    let verified = verify_signature(doc, root, signature, keys, allow_sha1)?;
    Ok(Verified {
        tree: Element::parse(&verified.signed_bytes)?,
        certificate_id: verified.certificate_id,
    })
}

/// What a verified logout message says.
#[derive(Debug, Default)]
pub struct Message {
    pub id: String,
    /// The Issuer inside the signed bytes.
    pub issuer: String,
    pub issue_instant: String,
    pub destination: Option<String>,
    pub in_response_to: Option<String>,
    pub not_on_or_after: Option<String>,
    pub name_id: Option<String>,
    pub session_indexes: Vec<String>,
    /// The status of a LogoutResponse: the top-level code's name, and the
    /// second-level one after a slash (`Success`, `Responder/PartialLogout`).
    pub status: Option<String>,
    pub status_message: Option<String>,
}

fn required<'a>(tree: &'a Element, name: &str) -> Result<&'a str, Reject> {
    tree.attr(name).filter(|v| !v.is_empty()).ok_or_else(|| {
        reject(
            Reason::Malformed,
            format!("the {} has no {name}", tree.name),
        )
    })
}

/// Reads the signed message. An EncryptedID is decrypted with `sp_key`; its
/// plaintext may use the prefixes `inherited`.
pub fn read(
    tree: &Element,
    sp_key: Option<&SpKey>,
    inherited: &[(String, String)],
) -> Result<Message, Reject> {
    if required(tree, "Version")? != "2.0" {
        return Err(reject(
            Reason::Malformed,
            format!("the {} is not SAML 2.0", tree.name),
        ));
    }
    let mut m = Message {
        id: required(tree, "ID")?.to_string(),
        issuer: tree
            .child(NS_ASSERTION, "Issuer")
            .map(|i| xml_trim(&i.text).to_string())
            .unwrap_or_default(),
        issue_instant: required(tree, "IssueInstant")?.to_string(),
        destination: tree.attr("Destination").map(str::to_string),
        in_response_to: tree.attr("InResponseTo").map(str::to_string),
        not_on_or_after: tree.attr("NotOnOrAfter").map(str::to_string),
        ..Default::default()
    };
    if tree.is(NS_PROTOCOL, "LogoutRequest") {
        let encrypted = tree.child(NS_ASSERTION, "EncryptedID");
        let decrypted;
        let name_id =
            match (tree.child(NS_ASSERTION, "NameID"), encrypted) {
                (Some(n), None) => n,
                (None, Some(e)) => {
                    let key = sp_key.ok_or_else(|| {
                        reject(
                        Reason::EncryptedUnsupported,
                        "the LogoutRequest carries an EncryptedID but this SP has no private key; \
                         install one with saml_jit_set_sp_key",
                    )
                    })?;
                    decrypted = decrypt_element(e, key, "NameID", inherited)?;
                    &decrypted
                }
                _ => return Err(reject(
                    Reason::SubjectMissing,
                    "the LogoutRequest names no user: it needs exactly one NameID (or EncryptedID)",
                )),
            };
        let value = xml_trim(&name_id.text).to_string();
        if value.is_empty() || !name_id.children.is_empty() {
            return Err(reject(
                Reason::SubjectMissing,
                "the LogoutRequest's NameID is empty",
            ));
        }
        m.name_id = Some(value);
        m.session_indexes = tree
            .children_named(NS_PROTOCOL, "SessionIndex")
            .map(|s| xml_trim(&s.text).to_string())
            .filter(|s| !s.is_empty())
            .collect();
    } else {
        let status = tree
            .child(NS_PROTOCOL, "Status")
            .ok_or_else(|| reject(Reason::Malformed, "the LogoutResponse has no Status"))?;
        let code = status
            .child(NS_PROTOCOL, "StatusCode")
            .ok_or_else(|| reject(Reason::Malformed, "the LogoutResponse has no StatusCode"))?;
        let short = |c: &Element| -> String {
            let value = c.attr("Value").unwrap_or_default();
            value
                .strip_prefix(STATUS_PREFIX)
                .unwrap_or(value)
                .to_string()
        };
        let mut text = short(code);
        if let Some(second) = code.child(NS_PROTOCOL, "StatusCode") {
            text = format!("{text}/{}", short(second));
        }
        m.status = Some(text);
        m.status_message = status
            .child(NS_PROTOCOL, "StatusMessage")
            .map(|s| xml_trim(&s.text).to_string());
    }
    Ok(m)
}

/// Values this SP writes into a message must be XML characters.
fn check_chars(fields: &[(&str, &str)]) -> Result<(), String> {
    for (what, value) in fields {
        if let Some(c) = value.chars().find(|c| !is_xml_char(*c)) {
            return Err(format!(
                "the {what} contains the character U+{:04X}, which no XML document can carry",
                c as u32
            ));
        }
    }
    Ok(())
}

/// The message header every protocol message shares.
pub struct Header<'a> {
    pub id: &'a str,
    pub issue_instant: &'a str,
    pub destination: &'a str,
    pub issuer: &'a str,
}

impl Header<'_> {
    fn open(&self, element: &str, extra: &str) -> Result<String, String> {
        check_chars(&[
            ("IdP Single Logout URL", self.destination),
            ("SP entity ID", self.issuer),
        ])?;
        Ok(format!(
            "<samlp:{element} xmlns:samlp=\"{NS_PROTOCOL}\" xmlns:saml=\"{NS_ASSERTION}\" \
             ID=\"{}\" Version=\"2.0\" IssueInstant=\"{}\" Destination=\"{}\"{extra}>\
             <saml:Issuer>{}</saml:Issuer>",
            escape(self.id),
            escape(self.issue_instant),
            escape(self.destination),
            escape(self.issuer)
        ))
    }
}

/// This SP's LogoutRequest for one session.
pub fn logout_request_xml(
    header: &Header<'_>,
    name_id: &str,
    name_id_format: Option<&str>,
    session_index: Option<&str>,
) -> Result<String, String> {
    check_chars(&[
        ("NameID", name_id),
        ("NameID format", name_id_format.unwrap_or_default()),
        ("SessionIndex", session_index.unwrap_or_default()),
    ])?;
    let mut xml = header.open("LogoutRequest", "")?;
    let format = name_id_format
        .map(|f| format!(" Format=\"{}\"", escape(f)))
        .unwrap_or_default();
    xml.push_str(&format!(
        "<saml:NameID{format}>{}</saml:NameID>",
        escape(name_id)
    ));
    if let Some(index) = session_index {
        xml.push_str(&format!(
            "<samlp:SessionIndex>{}</samlp:SessionIndex>",
            escape(index)
        ));
    }
    xml.push_str("</samlp:LogoutRequest>");
    Ok(xml)
}

/// This SP's LogoutResponse to the IdP's request `in_response_to`.
pub fn logout_response_xml(
    header: &Header<'_>,
    in_response_to: &str,
    status: &str,
) -> Result<String, String> {
    let mut xml = header.open(
        "LogoutResponse",
        &format!(" InResponseTo=\"{}\"", escape(in_response_to)),
    )?;
    xml.push_str(&format!(
        "<samlp:Status><samlp:StatusCode Value=\"{STATUS_PREFIX}{status}\"/></samlp:Status>\
         </samlp:LogoutResponse>"
    ));
    Ok(xml)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn deflate_b64(xml: &str) -> String {
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        d.write_all(xml.as_bytes()).unwrap();
        base64::engine::general_purpose::STANDARD.encode(d.finish().unwrap())
    }

    fn code<T>(r: Result<T, Reject>) -> &'static str {
        r.map(|_| "ok").unwrap_or_else(|e| e.code())
    }

    const REQUEST: &str =
        "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
        xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_r1\" Version=\"2.0\" \
        IssueInstant=\"2026-01-01T00:00:00Z\" Destination=\"https://sp/slo\">\
        <saml:Issuer> https://idp/ </saml:Issuer><saml:NameID>ada</saml:NameID>\
        <samlp:SessionIndex>s1</samlp:SessionIndex><samlp:SessionIndex>s2</samlp:SessionIndex>\
        </samlp:LogoutRequest>";

    #[test]
    fn reads_a_redirect_query_as_received() {
        let value = crate::saml::request::url_encode(&deflate_b64(REQUEST));
        let query = format!(
            "Signature=c2ln&SAMLRequest={value}&SigAlg=http%3A%2F%2Fa&RelayState=to+%2Fhome&x=1"
        );
        let r = receive(None, Some(&query), 100_000).unwrap();
        assert_eq!(r.kind, Kind::Request);
        assert_eq!(r.claimed_issuer, "https://idp/");
        assert_eq!(r.relay_state.as_deref(), Some("to /home"));
        let d = r.detached.as_ref().unwrap();
        assert_eq!(
            d.signed_octets,
            format!("SAMLRequest={value}&RelayState=to+%2Fhome&SigAlg=http%3A%2F%2Fa"),
            "signed in the binding's order, raw"
        );
        assert_eq!(d.sig_alg.as_deref(), Some("http://a"));
        let m = read(&Element::parse(&r.xml).unwrap(), None, &[]).unwrap();
        assert_eq!(m.name_id.as_deref(), Some("ada"));
        assert_eq!(m.issuer, "https://idp/");
        assert_eq!(m.session_indexes, ["s1", "s2"]);
        assert_eq!(m.destination.as_deref(), Some("https://sp/slo"));
    }

    #[test]
    fn refuses_what_does_not_add_up() {
        let value = crate::saml::request::url_encode(&deflate_b64(REQUEST));
        let twice = format!("SAMLRequest={value}&SAMLRequest={value}");
        assert_eq!(code(receive(None, Some(&twice), 100_000)), "malformed");
        let as_response = format!("SAMLResponse={value}");
        assert_eq!(
            code(receive(None, Some(&as_response), 100_000)),
            "malformed"
        );
        let q = format!("SAMLRequest={value}");
        assert_eq!(
            code(receive(Some("b3RoZXI="), Some(&q), 100_000)),
            "malformed",
            "message and query string disagree"
        );
        assert_eq!(code(receive(None, Some(&q), 10)), "too_large");
        // A deflate bomb: 10 MB of zeros in a few KB.
        let bomb = deflate_b64(&format!("<a>{}</a>", " ".repeat(10_000_000)));
        let bomb_query = format!("SAMLRequest={}", crate::saml::request::url_encode(&bomb));
        assert_eq!(code(receive(None, Some(&bomb_query), 200_000)), "too_large");
        let dtd = deflate_b64("<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>");
        let dtd_query = format!("SAMLRequest={}", crate::saml::request::url_encode(&dtd));
        assert_eq!(
            code(receive(None, Some(&dtd_query), 100_000)),
            "dtd_forbidden"
        );
        let plain = base64::engine::general_purpose::STANDARD.encode("<a/>");
        assert_eq!(code(receive(Some(&plain), None, 100_000)), "malformed");
        let no_issuer = base64::engine::general_purpose::STANDARD
            .encode(REQUEST.replace("<saml:Issuer> https://idp/ </saml:Issuer>", ""));
        assert_eq!(
            code(receive(Some(&no_issuer), None, 100_000)),
            "unknown_issuer"
        );
    }

    #[test]
    fn refuses_broken_queries_and_unlisted_algorithms() {
        let value = crate::saml::request::url_encode(&deflate_b64(REQUEST));
        let broken = format!("SAMLRequest={value}&RelayState=%zz");
        assert_eq!(code(receive(None, Some(&broken), 100_000)), "malformed");
        let not_utf8 = format!("SAMLRequest={value}&RelayState=%ff");
        assert_eq!(code(receive(None, Some(&not_utf8), 100_000)), "malformed");
        assert_eq!(
            code(receive(None, Some("RelayState=x"), 100_000)),
            "malformed"
        );
        let ok = |alg: &str, sha1: bool| query_digest(alg, sha1).map(|_| ()).map_err(|r| r.code());
        assert_eq!(
            ok("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", false),
            Ok(())
        );
        assert_eq!(
            ok("http://www.w3.org/2000/09/xmldsig#rsa-sha1", true),
            Ok(())
        );
        assert_eq!(
            ok("http://www.w3.org/2000/09/xmldsig#rsa-sha1", false),
            Err("algorithm_forbidden")
        );
        for other in [
            "http://www.w3.org/2000/09/xmldsig#dsa-sha1",
            "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256",
            "",
        ] {
            assert_eq!(ok(other, true), Err("algorithm_forbidden"), "{other:?}");
        }
    }

    #[test]
    fn reads_statuses_and_needs_a_subject() {
        let response = "<samlp:LogoutResponse xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
            ID=\"_x\" Version=\"2.0\" IssueInstant=\"2026-01-01T00:00:00Z\" InResponseTo=\"_r\">\
            <samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Responder\">\
            <samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:PartialLogout\"/></samlp:StatusCode>\
            <samlp:StatusMessage> busy </samlp:StatusMessage></samlp:Status></samlp:LogoutResponse>";
        let m = read(&Element::parse(response.as_bytes()).unwrap(), None, &[]).unwrap();
        assert_eq!(m.status.as_deref(), Some("Responder/PartialLogout"));
        assert_eq!(m.status_message.as_deref(), Some("busy"));
        assert_eq!(m.in_response_to.as_deref(), Some("_r"));
        let anonymous = REQUEST.replace("<saml:NameID>ada</saml:NameID>", "");
        assert_eq!(
            code(read(
                &Element::parse(anonymous.as_bytes()).unwrap(),
                None,
                &[]
            )),
            "subject_missing"
        );
        for missing in [" ID=\"_r1\"", " IssueInstant=\"2026-01-01T00:00:00Z\""] {
            let without = REQUEST.replace(missing, "");
            assert_eq!(
                code(read(
                    &Element::parse(without.as_bytes()).unwrap(),
                    None,
                    &[]
                )),
                "malformed",
                "{missing}"
            );
        }
        let no_status = response.replace(
            &response[response.find("<samlp:Status>").unwrap()
                ..response.find("</samlp:LogoutResponse>").unwrap()],
            "",
        );
        assert_eq!(
            code(read(
                &Element::parse(no_status.as_bytes()).unwrap(),
                None,
                &[]
            )),
            "malformed"
        );
        let v1 = REQUEST.replace("Version=\"2.0\"", "Version=\"1.1\"");
        assert_eq!(
            code(read(&Element::parse(v1.as_bytes()).unwrap(), None, &[])),
            "malformed"
        );
    }

    #[test]
    fn writes_messages_in_schema_order() {
        let header = Header {
            id: "_a",
            issue_instant: "2026-01-01T00:00:00Z",
            destination: "https://idp/slo?x=1&y=2",
            issuer: "urn:sp",
        };
        let xml = logout_request_xml(&header, "a<b", Some("urn:f"), Some("s1")).unwrap();
        assert!(
            xml.contains("Destination=\"https://idp/slo?x=1&amp;y=2\""),
            "{xml}"
        );
        let issuer = xml.find("<saml:Issuer>urn:sp</saml:Issuer>").unwrap();
        let name_id = xml
            .find("<saml:NameID Format=\"urn:f\">a&lt;b</saml:NameID>")
            .unwrap();
        let index = xml
            .find("<samlp:SessionIndex>s1</samlp:SessionIndex>")
            .unwrap();
        assert!(issuer < name_id && name_id < index);
        let m = read(&Element::parse(xml.as_bytes()).unwrap(), None, &[]).unwrap();
        assert_eq!(m.name_id.as_deref(), Some("a<b"));
        let response = logout_response_xml(&header, "_r1", "Success").unwrap();
        let m = read(&Element::parse(response.as_bytes()).unwrap(), None, &[]).unwrap();
        assert_eq!(m.status.as_deref(), Some("Success"));
        assert!(logout_request_xml(&header, "a\u{1}", None, None).is_err());
    }
}
