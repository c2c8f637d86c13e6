//! The verification flow of one SAMLResponse, from base64 to an accepted
//! assertion: receive (decode, shape, DOM, issuer) -> the caller looks up the
//! IdP -> verify (signatures, signed bytes) -> validate (profile checks).

use std::rc::Rc;

use chrono::{DateTime, Utc};

use super::decode::decode_response;
use super::decrypt::{self, SpKey};
use super::dom::{Document, Node, NS_ASSERTION, NS_DSIG, NS_PROTOCOL};
use super::extract::{self, Assertion, Envelope};
use super::tree::Element;
use super::validate::{self, Accepted, Policy};
use super::verify::{verify_signature, TrustedKey, VerifiedSignature};
use super::{reject, Reason, Reject};

/// A decoded, well-formed response whose IdP is not yet known.
pub struct Incoming {
    doc: Document,
    /// Issuer as the message claims it (unverified): used only to pick the
    /// IdP whose keys must then verify the signature.
    pub claimed_issuer: String,
    /// Response ID and Assertion ID as claimed, for the audit log.
    pub claimed_assertion_id: Option<String>,
    /// Whether the text mentions "Encrypted" at all: when it does not (the
    /// usual case), no element can be encrypted and the DOM walk is skipped.
    mentions_encryption: bool,
}

impl Incoming {
    /// Whether the SP key is needed: an EncryptedAssertion, EncryptedID or
    /// EncryptedAttribute is present.
    pub fn is_encrypted(&self) -> bool {
        self.mentions_encryption
            && self.doc.root().is_some_and(|r| {
                r.descendants().iter().any(|n| {
                    ["EncryptedAssertion", "EncryptedID", "EncryptedAttribute"]
                        .iter()
                        .any(|name| n.is(NS_ASSERTION, name))
                })
            })
    }
}

/// Signatures checked and values read from the signed bytes.
pub struct Verified {
    pub envelope: Envelope,
    pub assertion: Assertion,
    pub response_signature: Option<VerifiedSignature>,
    pub assertion_signature: Option<VerifiedSignature>,
}

impl Verified {
    pub fn certificate_id(&self) -> Option<i64> {
        self.assertion_signature
            .as_ref()
            .or(self.response_signature.as_ref())
            .map(|s| s.certificate_id)
    }
}

pub fn receive(input: &str, max_bytes: usize) -> Result<Incoming, Reject> {
    let xml = decode_response(input, max_bytes)?;
    let doc = Document::parse(&xml)?;
    let root = doc
        .root()
        .ok_or_else(|| reject(Reason::Malformed, "the document has no root element"))?;
    if !root.is(NS_PROTOCOL, "Response") {
        return Err(reject(
            Reason::Malformed,
            format!(
                "the root element is {}, expected samlp:Response in namespace {NS_PROTOCOL}",
                root.local_name()
            ),
        ));
    }
    let assertion = root.child(NS_ASSERTION, "Assertion");
    let issuer_node = root
        .child(NS_ASSERTION, "Issuer")
        .or_else(|| assertion.and_then(|a| a.child(NS_ASSERTION, "Issuer")));
    let claimed_issuer = match issuer_node {
        Some(n) if !n.children().is_empty() => {
            return Err(reject(
                Reason::Malformed,
                "the Issuer element contains child elements",
            ))
        }
        Some(n) => super::text::xml_trim(&n.text()).to_string(),
        None => String::new(),
    };
    if claimed_issuer.is_empty() {
        return Err(reject(
            Reason::UnknownIssuer,
            "the response names no Issuer, so no trusted IdP can be chosen",
        ));
    }
    let claimed_assertion_id = assertion.and_then(|a| a.attr("ID"));
    Ok(Incoming {
        doc,
        claimed_issuer,
        claimed_assertion_id,
        mentions_encryption: memchr::memmem::find(&xml, b"Encrypted").is_some(),
    })
}

/// Checks every signature that protects the Response or its Assertion and
/// reads the assertion from the bytes they cover. An EncryptedAssertion is
/// decrypted with `sp_key` after the Response signature (which covers the
/// ciphertext) was checked.
pub fn verify(
    incoming: &Incoming,
    keys: &[Rc<TrustedKey>],
    allow_sha1: bool,
    sp_key: Option<&SpKey>,
) -> Result<Verified, Reject> {
    let doc = &incoming.doc;
    let root = doc.root().expect("receive checked the root");
    // The unsigned envelope: used to fail early (status, counts), never to pass.
    let dom_envelope = extract::envelope(&Element::from_dom(root, &|n: &Node| {
        n.is(NS_DSIG, "Signature") || n.is(NS_ASSERTION, "Assertion")
    }))?;
    validate::check_status(&dom_envelope)?;
    let plain = root.children_named(NS_ASSERTION, "Assertion");
    let encrypted = root.children_named(NS_ASSERTION, "EncryptedAssertion");
    match plain.len() + encrypted.len() {
        1 => {}
        0 => {
            return Err(reject(
                Reason::Malformed,
                "the Response carries no Assertion",
            ))
        }
        n => {
            return Err(reject(
                Reason::MultipleAssertions,
                format!("the Response carries {n} Assertions; exactly one is accepted"),
            ))
        }
    }
    let targets: Vec<Node> = std::iter::once(root).chain(plain.iter().copied()).collect();
    check_unique_ids(root, &targets)?;
    doc.register_id(root)?;
    let response_signature = signature_of(root)?
        .map(|sig| verify_signature(doc, root, sig, keys, allow_sha1))
        .transpose()?;
    let signed_envelope = response_signature
        .as_ref()
        .map(|s| Element::parse(&s.signed_bytes).and_then(|e| extract::envelope(&e)))
        .transpose()?
        .map(|envelope| Envelope {
            signed: true,
            ..envelope
        });

    let (assertion_signature, assertion_tree) = if let [node] = plain.as_slice() {
        doc.register_id(*node)?;
        let signature = signature_of(*node)?
            .map(|sig| verify_signature(doc, *node, sig, keys, allow_sha1))
            .transpose()?;
        let tree = match (&signature, &signed_envelope) {
            (Some(a), _) => Some(Element::parse(&a.signed_bytes)?),
            (None, Some(env)) => match env.assertions.as_slice() {
                [one] => Some(one.clone()),
                _ => {
                    return Err(reject(
                        Reason::MultipleAssertions,
                        "the signed Response does not contain exactly one Assertion",
                    ))
                }
            },
            (None, None) => None,
        };
        (signature, tree)
    } else {
        let node = encrypted[0];
        let sp_key = sp_key.ok_or_else(|| {
            reject(
                Reason::EncryptedUnsupported,
                "the response carries an EncryptedAssertion but this SP has no private key; \
                 install one with saml_jit_set_sp_key(sp_entity_id, private_key, certificate)",
            )
        })?;
        let (standalone, inner) = decrypt::open(doc, node, sp_key, &node.in_scope_namespaces())?;
        let wrapper = inner.root().ok_or_else(decrypt::failed)?;
        let decrypted = match wrapper.children().as_slice() {
            [a] if a.is(NS_ASSERTION, "Assertion") => *a,
            _ => return Err(decrypt::failed()),
        };
        check_unique_ids(wrapper, &[decrypted])?;
        inner.register_id(decrypted)?;
        let signature = signature_of(decrypted)?
            .map(|sig| verify_signature(&inner, decrypted, sig, keys, allow_sha1))
            .transpose()?;
        let tree = match (&signature, &response_signature) {
            (Some(a), _) => Some(Element::parse(&a.signed_bytes)?),
            // The signed Response covers the ciphertext these bytes came from.
            (None, Some(_)) => Element::parse(&standalone)
                .map_err(|_| decrypt::failed())?
                .children
                .into_iter()
                .next(),
            (None, None) => None,
        };
        (signature, tree)
    };
    let Some(assertion_tree) = assertion_tree else {
        return Err(reject(
            Reason::Unsigned,
            "neither the Response nor its Assertion is signed; an unsigned assertion proves nothing",
        ));
    };
    let mut assertion_tree = assertion_tree;
    decrypt_identifiers(&mut assertion_tree, sp_key)?;
    let assertion = extract::assertion(&assertion_tree)?;
    Ok(Verified {
        envelope: signed_envelope.unwrap_or(dom_envelope),
        assertion,
        response_signature,
        assertion_signature,
    })
}

/// Namespaces a decrypted NameID or Attribute may use without declaring them
/// (its original ancestors are not part of the ciphertext).
const SAML_NAMESPACES: [(&str, &str); 8] = [
    ("saml", NS_ASSERTION),
    ("saml2", NS_ASSERTION),
    ("samlp", NS_PROTOCOL),
    ("saml2p", NS_PROTOCOL),
    ("ds", NS_DSIG),
    ("xenc", "http://www.w3.org/2001/04/xmlenc#"),
    ("xs", "http://www.w3.org/2001/XMLSchema"),
    ("xsi", "http://www.w3.org/2001/XMLSchema-instance"),
];

/// EncryptedID (in the Subject) and EncryptedAttribute (in an
/// AttributeStatement) are replaced in the tree by what they decrypt to.
/// Their ciphertext is part of the signed bytes the tree was built from.
fn decrypt_identifiers(tree: &mut Element, sp_key: Option<&SpKey>) -> Result<(), Reject> {
    for part in tree.children.iter_mut() {
        let wanted = if part.is(NS_ASSERTION, "Subject") {
            ("EncryptedID", "NameID")
        } else if part.is(NS_ASSERTION, "AttributeStatement") {
            ("EncryptedAttribute", "Attribute")
        } else {
            continue;
        };
        for slot in part
            .children
            .iter_mut()
            .filter(|c| c.is(NS_ASSERTION, wanted.0))
        {
            let key = sp_key.ok_or_else(|| {
                reject(
                    Reason::EncryptedUnsupported,
                    format!(
                        "the assertion carries an {} but this SP has no private key; \
                         install one with saml_jit_set_sp_key",
                        wanted.0
                    ),
                )
            })?;
            *slot = decrypt_element(slot, key, wanted.1, &[])?;
        }
    }
    Ok(())
}

/// An EncryptedID or EncryptedAttribute (taken from signed bytes) decrypted
/// to the `wanted` element it must contain. Its plaintext may use the
/// prefixes `inherited` (in scope where it stood) and the usual SAML ones.
pub(super) fn decrypt_element(
    slot: &Element,
    key: &SpKey,
    wanted: &str,
    inherited: &[(String, String)],
) -> Result<Element, Reject> {
    let xml = slot.to_xml();
    let doc = Document::parse(xml.as_bytes())?;
    let root = doc.root().expect("parsed");
    let mut namespaces = inherited.to_vec();
    for (prefix, uri) in SAML_NAMESPACES {
        if !namespaces.iter().any(|(p, _)| p == prefix) {
            namespaces.push((prefix.to_string(), uri.to_string()));
        }
    }
    let (standalone, _) = decrypt::open(&doc, root, key, &namespaces)?;
    let decrypted = Element::parse(&standalone)
        .map_err(|_| decrypt::failed())?
        .children
        .into_iter()
        .next();
    match decrypted {
        Some(el) if el.is(NS_ASSERTION, wanted) => Ok(el),
        _ => Err(decrypt::failed()),
    }
}

/// The profile checks on what was verified.
pub fn accept(
    verified: &Verified,
    policy: &Policy,
    now: DateTime<Utc>,
    in_response_to: Option<&str>,
) -> Result<Accepted, Reject> {
    validate::validate(
        &verified.envelope,
        &verified.assertion,
        policy,
        now,
        in_response_to,
    )
}

/// The ds:Signature directly inside `parent`, if any; two are refused.
pub(super) fn signature_of(parent: Node) -> Result<Option<Node>, Reject> {
    let sigs = parent.children_named(NS_DSIG, "Signature");
    match sigs.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => Err(reject(
            Reason::ReferenceInvalid,
            format!(
                "the {} carries {} signatures; exactly one is accepted",
                parent.local_name(),
                many.len()
            ),
        )),
    }
}

/// An ID that a signature may point at must occur once in the whole
/// document: a second element with the same ID is how wrapping attacks hide
/// the signed original.
pub(super) fn check_unique_ids(root: Node, targets: &[Node]) -> Result<(), Reject> {
    let wanted: Vec<String> = targets.iter().filter_map(|n| n.attr("ID")).collect();
    let mut counts = vec![0usize; wanted.len()];
    for node in root.descendants() {
        for value in node.attribute_values(&["ID", "AssertionID", "Id", "id"]) {
            for (i, w) in wanted.iter().enumerate() {
                if &value == w {
                    counts[i] += 1;
                }
            }
        }
    }
    for (w, n) in wanted.iter().zip(counts) {
        if n > 1 {
            return Err(reject(
                Reason::ReferenceInvalid,
                format!("the ID {w:?} occurs {n} times in the document (signature wrapping)"),
            ));
        }
    }
    Ok(())
}
