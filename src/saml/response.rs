//! The verification flow of one SAMLResponse, from base64 to an accepted
//! assertion: receive (decode, shape, DOM, issuer) -> the caller looks up the
//! IdP -> verify (signatures, signed bytes) -> validate (profile checks).

use chrono::{DateTime, Utc};

use super::decode::decode_response;
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
        Some(n) => n
            .text()
            .trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
            .to_string(),
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
    })
}

/// Checks every signature that protects the Response or its Assertion and
/// reads the assertion from the bytes they cover.
pub fn verify(
    incoming: &Incoming,
    keys: &[TrustedKey],
    allow_sha1: bool,
) -> Result<Verified, Reject> {
    let doc = &incoming.doc;
    let root = doc.root().expect("receive checked the root");
    // The unsigned envelope: used to fail early (status, counts), never to pass.
    let dom_envelope = extract::envelope(&Element::from_dom(root, &|n: &Node| {
        n.is(NS_DSIG, "Signature") || n.is(NS_ASSERTION, "Assertion")
    }))?;
    validate::check_status(&dom_envelope)?;
    let assertions = root.children_named(NS_ASSERTION, "Assertion");
    if root.child(NS_ASSERTION, "EncryptedAssertion").is_some() {
        return Err(reject(
            Reason::EncryptedUnsupported,
            "the response carries an EncryptedAssertion; encrypted assertions are not supported yet \
             (configure the IdP to send a signed, unencrypted assertion)",
        ));
    }
    let assertion_node = match assertions.as_slice() {
        [one] => *one,
        [] => {
            return Err(reject(
                Reason::Malformed,
                "the Response carries no Assertion",
            ))
        }
        many => {
            return Err(reject(
                Reason::MultipleAssertions,
                format!(
                    "the Response carries {} Assertions; exactly one is accepted",
                    many.len()
                ),
            ))
        }
    };
    check_unique_ids(root, &[root, assertion_node])?;
    doc.register_id(root)?;
    doc.register_id(assertion_node)?;

    let response_signature = signature_of(root)?
        .map(|sig| verify_signature(doc, root, sig, keys, allow_sha1))
        .transpose()?;
    let assertion_signature = signature_of(assertion_node)?
        .map(|sig| verify_signature(doc, assertion_node, sig, keys, allow_sha1))
        .transpose()?;

    let (envelope, assertion_tree) = match (&response_signature, &assertion_signature) {
        (None, None) => {
            return Err(reject(
                Reason::Unsigned,
                "neither the Response nor its Assertion is signed; an unsigned assertion proves nothing",
            ))
        }
        (Some(signed), _) => {
            let envelope = extract::envelope(&Element::parse(&signed.signed_bytes)?)?;
            let tree = match envelope.assertions.as_slice() {
                [one] => match &assertion_signature {
                    Some(a) => Element::parse(&a.signed_bytes)?,
                    None => one.clone(),
                },
                _ => {
                    return Err(reject(
                        Reason::MultipleAssertions,
                        "the signed Response does not contain exactly one Assertion",
                    ))
                }
            };
            (envelope, tree)
        }
        (None, Some(signed)) => (dom_envelope, Element::parse(&signed.signed_bytes)?),
    };
    let assertion = extract::assertion(&assertion_tree)?;
    Ok(Verified {
        envelope,
        assertion,
        response_signature,
        assertion_signature,
    })
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
fn signature_of(parent: Node) -> Result<Option<Node>, Reject> {
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
fn check_unique_ids(root: Node, targets: &[Node]) -> Result<(), Reject> {
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
