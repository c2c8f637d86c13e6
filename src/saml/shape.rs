//! Step 1b: the structural pre-check. One streaming pass over the raw XML,
//! before libxml2 builds a DOM or xmlsec runs, that bounds everything a
//! hostile document could turn into work: nesting, node count, attributes and
//! namespace declarations per element, namespaces in scope, signatures. It
//! also refuses DTDs (no entity can ever expand), identifiers that are not
//! NCNames (no text reaches xmlsec's XPointer engine) and URIs that point
//! outside the document (no file or network access while verifying or
//! decrypting).
//!
//! The numbers come from data: over the 149 real responses of `../shared`
//! (conformance and interop corpora: Okta, Entra ID, ADFS, Google, Keycloak,
//! Shibboleth, PingFederate, ...) the largest seen are depth 10, 73 elements,
//! 6 attributes and 6 namespace declarations on one element, 86 attributes
//! and 25 namespace declarations in a whole document, 9 namespace
//! declarations in scope at one element, IDs of 52 characters. Each limit leaves
//! a wide margin above that (thousands of group values still fit), while the
//! worst document the limits admit costs well under 50 ms of CPU
//! (`scripts/bench-hostile`, BENCHMARKS.md "Hostile input"). Canonicalization
//! costs about (nodes x depth): the node and depth limits are set together.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::text::{is_id_reference, is_ncname};
use super::{reject, Reason, Reject};

/// The bounds one document must stay within.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Element nesting.
    pub depth: usize,
    /// Elements, comments and processing instructions.
    pub nodes: usize,
    /// The same when any signature uses inclusive canonicalization (1.0 or
    /// 1.1), which costs several times more per node than exclusive
    /// canonicalization (every namespace in scope of every node).
    pub nodes_inclusive_c14n: usize,
    /// Attributes of one element, namespace declarations not counted.
    pub attributes: usize,
    /// Attributes in the whole document, namespace declarations not counted.
    pub attributes_total: usize,
    /// Namespace declarations on one element.
    pub namespace_declarations: usize,
    /// Namespace declarations in the whole document.
    pub namespace_declarations_total: usize,
    /// Namespace declarations on an element and all its ancestors together:
    /// what inclusive canonicalization walks for every node.
    pub namespaces_in_scope: usize,
    /// `Reference` elements in the whole document.
    pub references: usize,
    /// Prefixes of one `InclusiveNamespaces PrefixList`.
    pub prefix_list: usize,
}

impl Limits {
    /// A SAMLResponse (and anything decrypted out of one).
    pub const RESPONSE: Limits = Limits {
        depth: 16,
        nodes: 5_000,
        nodes_inclusive_c14n: 1_000,
        attributes: 32,
        attributes_total: 4_096,
        namespace_declarations: 16,
        namespace_declarations_total: 2_048,
        namespaces_in_scope: 16,
        references: 8,
        prefix_list: 16,
    };

    /// IdP metadata imported by an administrator: one entity, but sometimes
    /// with many endpoints and certificates.
    pub const METADATA: Limits = Limits {
        depth: 32,
        nodes: 100_000,
        nodes_inclusive_c14n: 100_000,
        attributes: 32,
        attributes_total: 200_000,
        namespace_declarations: 32,
        namespace_declarations_total: 20_000,
        namespaces_in_scope: 64,
        references: 8,
        prefix_list: 16,
    };
}

/// Attribute local names that SAML, XML-DSig and XML-Enc declare as `xs:ID`
/// (`id` covers `xml:id`, which libxml2 registers as an ID by itself).
const ID_ATTRIBUTES: [&[u8]; 4] = [b"ID", b"Id", b"AssertionID", b"id"];

fn malformed(detail: String) -> Reject {
    reject(Reason::Malformed, detail)
}

/// Checks `xml` against `limits`: no DOCTYPE, exactly one root element,
/// well-formed nesting, every bound of `limits`, NCName identifiers, and
/// same-document `#id` URIs only.
pub fn check_shape(xml: &[u8], limits: &Limits) -> Result<(), Reject> {
    let mut reader = Reader::from_reader(xml);
    reader.config_mut().check_end_names = true;
    // Declarations per open element, so the in-scope total can be unwound.
    let mut declared: Vec<usize> = Vec::with_capacity(limits.depth);
    let mut in_scope = 0usize;
    let mut roots = 0usize;
    let mut nodes = 0usize;
    let mut references = 0usize;
    let mut totals = Totals::default();
    let mut buf = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buf).map_err(|e| {
            malformed(format!(
                "the XML is not well-formed at byte {}: {e}",
                reader.buffer_position()
            ))
        })?;
        match &event {
            Event::DocType(_) => {
                return Err(reject(
                    Reason::DtdForbidden,
                    "the document has a DOCTYPE; SAML responses never need one and it is refused \
                     before any entity could be expanded",
                ))
            }
            Event::Start(e) | Event::Empty(e) => {
                if declared.is_empty() {
                    roots += 1;
                    if roots > 1 {
                        return Err(malformed(
                            "the document has more than one root element".into(),
                        ));
                    }
                }
                nodes += 1;
                if nodes > limits.nodes {
                    return Err(malformed(format!(
                        "the document has more than {} elements; no SAML message needs that many",
                        limits.nodes
                    )));
                }
                if e.local_name().as_ref() == b"Reference" {
                    references += 1;
                    if references > limits.references {
                        return Err(reject(
                            Reason::ReferenceInvalid,
                            format!(
                                "the document has more than {} signature References",
                                limits.references
                            ),
                        ));
                    }
                }
                let declarations = check_element(e, limits, &mut totals)?;
                if matches!(event, Event::Start(_)) {
                    if declared.len() == limits.depth {
                        return Err(malformed(format!(
                            "elements are nested more than {} levels deep",
                            limits.depth
                        )));
                    }
                    declared.push(declarations);
                }
                if in_scope + declarations > limits.namespaces_in_scope {
                    return Err(malformed(format!(
                        "more than {} namespace declarations are in scope at element {}",
                        limits.namespaces_in_scope,
                        String::from_utf8_lossy(e.name().as_ref())
                    )));
                }
                if matches!(event, Event::Start(_)) {
                    in_scope += declarations;
                }
            }
            Event::End(_) => {
                in_scope -= declared.pop().unwrap_or(0);
            }
            Event::Comment(_) | Event::PI(_) => {
                nodes += 1;
                if nodes > limits.nodes {
                    return Err(malformed(format!(
                        "the document has more than {} nodes",
                        limits.nodes
                    )));
                }
            }
            Event::Text(t) if declared.is_empty() && !t.iter().all(u8::is_ascii_whitespace) => {
                return Err(malformed("text outside the root element".into()))
            }
            Event::CData(_) if declared.is_empty() => {
                return Err(malformed("CDATA outside the root element".into()))
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if roots == 0 {
        return Err(malformed("the document has no root element".into()));
    }
    // Checked at the end: a Signature may come after the content it covers.
    if totals.inclusive_c14n && nodes > limits.nodes_inclusive_c14n {
        return Err(malformed(format!(
            "the document has more than {} elements and a signature uses inclusive \
             canonicalization, which is accepted only for documents of at most {} elements \
             ({} with exclusive canonicalization, which every mainstream IdP uses)",
            limits.nodes_inclusive_c14n, limits.nodes_inclusive_c14n, limits.nodes
        )));
    }
    if !declared.is_empty() {
        return Err(malformed(
            "the document is truncated (unclosed elements)".into(),
        ));
    }
    Ok(())
}

/// Attributes and namespace declarations seen so far in the document.
#[derive(Default)]
struct Totals {
    attributes: usize,
    namespace_declarations: usize,
    /// Whether an `Algorithm` names inclusive canonicalization.
    inclusive_c14n: bool,
}

/// Inclusive canonicalization, 1.0 and 1.1, with and without comments.
const INCLUSIVE_C14N: [&str; 2] = [
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    "http://www.w3.org/2006/12/xml-c14n11",
];

/// The checks on one start tag; returns how many namespaces it declares.
fn check_element(
    e: &BytesStart<'_>,
    limits: &Limits,
    totals: &mut Totals,
) -> Result<usize, Reject> {
    let element = || String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let local = e.local_name();
    if local.as_ref() == b"CipherReference" {
        return Err(reject(
            Reason::EncryptedUnsupported,
            "the message has a CipherReference (ciphertext stored outside the document); \
             only inline CipherValue is supported",
        ));
    }
    let mut attributes = 0usize;
    let mut declarations = 0usize;
    for attr in e.attributes().with_checks(true) {
        let attr = attr
            .map_err(|err| malformed(format!("a bad attribute on element {}: {err}", element())))?;
        let key = attr.key;
        if key.as_ref() == b"xmlns" || key.prefix().is_some_and(|p| p.as_ref() == b"xmlns") {
            declarations += 1;
            totals.namespace_declarations += 1;
            if declarations > limits.namespace_declarations {
                return Err(malformed(format!(
                    "element {} declares more than {} namespaces",
                    element(),
                    limits.namespace_declarations
                )));
            }
            if totals.namespace_declarations > limits.namespace_declarations_total {
                return Err(malformed(format!(
                    "the document declares more than {} namespaces",
                    limits.namespace_declarations_total
                )));
            }
            continue;
        }
        attributes += 1;
        totals.attributes += 1;
        if attributes > limits.attributes {
            return Err(malformed(format!(
                "element {} has more than {} attributes",
                element(),
                limits.attributes
            )));
        }
        if totals.attributes > limits.attributes_total {
            return Err(malformed(format!(
                "the document has more than {} attributes",
                limits.attributes_total
            )));
        }
        let name = key.local_name();
        let is_id = ID_ATTRIBUTES.contains(&name.as_ref());
        let is_uri = name.as_ref() == b"URI";
        let is_prefix_list = name.as_ref() == b"PrefixList";
        let is_algorithm = name.as_ref() == b"Algorithm";
        if !(is_id || is_uri || is_prefix_list || is_algorithm) {
            continue;
        }
        let value = attr
            .unescape_value()
            .map_err(|err| malformed(format!("a bad attribute on element {}: {err}", element())))?;
        if is_id && !is_ncname(&value) {
            return Err(malformed(format!(
                "the {} attribute of element {} is {:?}, which is not an xs:ID (XML name \
                 characters only: no spaces, quotes, parentheses or colons; at most {} bytes)",
                String::from_utf8_lossy(key.as_ref()),
                element(),
                shorten(&value),
                super::text::MAX_ID_LEN
            )));
        }
        if is_uri && !is_id_reference(&value) {
            return Err(reject(
                Reason::ReferenceInvalid,
                format!(
                    "element {} points at URI {:?}; only same-document references \"#id\" to an \
                     xs:ID are accepted, so nothing outside the message is ever read",
                    element(),
                    shorten(&value)
                ),
            ));
        }
        if is_algorithm && INCLUSIVE_C14N.iter().any(|uri| value.starts_with(uri)) {
            totals.inclusive_c14n = true;
        }
        if is_prefix_list && value.split_ascii_whitespace().count() > limits.prefix_list {
            return Err(malformed(format!(
                "an InclusiveNamespaces PrefixList names more than {} prefixes",
                limits.prefix_list
            )));
        }
    }
    Ok(declarations)
}

/// At most 80 characters of an attacker's value in a DETAIL.
fn shorten(value: &str) -> String {
    let mut out: String = value.chars().take(80).collect();
    if out.len() < value.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(xml: &str) -> &'static str {
        check_shape(xml.as_bytes(), &Limits::RESPONSE)
            .map(|_| "ok")
            .unwrap_or_else(|e| e.code())
    }

    #[test]
    fn plain_documents_pass() {
        assert_eq!(code("<a><b ID=\"_x1\"/><c/></a>"), "ok");
        assert_eq!(code("<a xmlns='urn:a'><r URI='#_x1'/></a>"), "ok");
    }

    #[test]
    fn bounds() {
        let deep = format!("{}{}", "<a>".repeat(17), "</a>".repeat(17));
        assert_eq!(code(&deep), "malformed");
        let deep_ok = format!("{}{}", "<a>".repeat(16), "</a>".repeat(16));
        assert_eq!(code(&deep_ok), "ok");
        let many = format!("<a>{}</a>", "<b/>".repeat(5_000));
        assert_eq!(code(&many), "malformed");
        let comments = format!("<a>{}</a>", "<!--x-->".repeat(5_000));
        assert_eq!(code(&comments), "malformed");
        let attrs: String = (0..33).map(|i| format!(" a{i}='x'")).collect();
        assert_eq!(code(&format!("<a{attrs}/>")), "malformed");
        let attrs: String = (0..32).map(|i| format!(" a{i}='x'")).collect();
        let spread = format!("<a>{}</a>", format!("<b{attrs}/>").repeat(128));
        assert_eq!(code(&spread), "ok");
        let spread = format!("<a>{}</a>", format!("<b{attrs}/>").repeat(129));
        assert_eq!(code(&spread), "malformed");
        let decls: String = (0..16).map(|i| format!(" xmlns:p{i}='urn:{i}'")).collect();
        let spread = format!("<a>{}</a>", format!("<b{decls}/>").repeat(129));
        assert_eq!(code(&spread), "malformed");
        let decls: String = (0..17).map(|i| format!(" xmlns:p{i}='urn:{i}'")).collect();
        assert_eq!(code(&format!("<a{decls}/>")), "malformed");
        // 16 per element is fine, but not 2 levels of them (32 in scope).
        let level: String = (0..16).map(|i| format!(" xmlns:p{i}='urn:{i}'")).collect();
        assert_eq!(code(&format!("<a{level}/>")), "ok");
        let bomb = format!("<a{level}><b{level}/></a>");
        assert_eq!(code(&bomb), "malformed");
        let inclusive = "<M Algorithm='http://www.w3.org/2006/12/xml-c14n11'/>";
        let small = format!("<a>{}{inclusive}</a>", "<b/>".repeat(998));
        assert_eq!(code(&small), "ok");
        let large = format!("<a>{}{inclusive}</a>", "<b/>".repeat(999));
        assert_eq!(code(&large), "malformed");
        let exclusive = "<M Algorithm='http://www.w3.org/2001/10/xml-exc-c14n#'/>";
        let large = format!("<a>{}{exclusive}</a>", "<b/>".repeat(999));
        assert_eq!(code(&large), "ok");
        let refs = format!("<a>{}</a>", "<Reference URI='#a'/>".repeat(9));
        assert_eq!(code(&refs), "reference_invalid");
        let prefixes = "p ".repeat(17);
        assert_eq!(
            code(&format!(
                "<a><InclusiveNamespaces PrefixList='{prefixes}'/></a>"
            )),
            "malformed"
        );
    }

    #[test]
    fn identifiers_and_uris() {
        assert_eq!(code("<a ID=\"x'),xpointer(/\"/>"), "malformed");
        assert_eq!(code("<a Id='a b'/>"), "malformed");
        assert_eq!(code("<a xml:id='a(b'/>"), "malformed");
        assert_eq!(code("<a ID='28338c8c-39ab-4b94'/>"), "ok");
        assert_eq!(code("<a AssertionID=''/>"), "malformed");
        assert_eq!(
            code("<a><R URI='file:///etc/passwd'/></a>"),
            "reference_invalid"
        );
        assert_eq!(
            code("<a><R URI='http://127.0.0.1/x'/></a>"),
            "reference_invalid"
        );
        assert_eq!(code("<a><R URI='#xpointer(/)'/></a>"), "reference_invalid");
        assert_eq!(code("<a><R URI=''/></a>"), "reference_invalid");
        assert_eq!(
            code("<a><x:CipherReference xmlns:x='urn:x' URI='#a'/></a>"),
            "encrypted_unsupported"
        );
    }

    #[test]
    fn dtd_and_roots() {
        assert_eq!(code("<!DOCTYPE a><a/>"), "dtd_forbidden");
        assert_eq!(code("<a/><b/>"), "malformed");
        assert_eq!(code("<a>"), "malformed");
        assert_eq!(code("text"), "malformed");
    }
}
