//! Step 4: typed values out of an element tree. For the Assertion the tree is
//! always built from signed bytes; for the Response envelope it is the signed
//! Response when that was signed, else the DOM (whose values can then only
//! make a response fail, never pass).

use chrono::{DateTime, Utc};

use super::dom::{NS_ASSERTION, NS_DSIG, NS_PROTOCOL};
use super::time::parse_instant;
use super::tree::Element;
use super::{reject, Reason, Reject};

pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
pub const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// The samlp:Response around the assertion.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub id: String,
    pub version: String,
    pub destination: Option<String>,
    pub in_response_to: Option<String>,
    pub issuer: Option<String>,
    pub status_code: String,
    pub status_detail: Vec<String>,
    pub status_message: Option<String>,
    pub assertions: Vec<Element>,
    pub encrypted_assertions: usize,
    /// Whether these values come from a verified Response signature (else
    /// from the unsigned DOM, where they can only make a response fail).
    pub signed: bool,
}

#[derive(Debug, Clone)]
pub struct NameId {
    pub value: String,
    pub format: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Confirmation {
    pub method: String,
    pub recipient: Option<String>,
    pub not_before: Option<DateTime<Utc>>,
    pub not_on_or_after: Option<DateTime<Utc>>,
    pub in_response_to: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Attribute {
    pub name: String,
    pub friendly_name: Option<String>,
    pub values: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Assertion {
    pub id: String,
    pub issuer: String,
    pub issue_instant: Option<DateTime<Utc>>,
    pub name_id: Option<NameId>,
    pub encrypted_id: bool,
    pub confirmations: Vec<Confirmation>,
    pub not_before: Option<DateTime<Utc>>,
    pub not_on_or_after: Option<DateTime<Utc>>,
    /// One entry per AudienceRestriction, each the list of its Audiences.
    pub audience_restrictions: Vec<Vec<String>>,
    pub authn_instant: Option<DateTime<Utc>>,
    pub session_index: Option<String>,
    pub session_not_on_or_after: Option<DateTime<Utc>>,
    pub has_authn_statement: bool,
    pub attributes: Vec<Attribute>,
}

impl Assertion {
    /// The request this assertion answers, from its signed bearer
    /// SubjectConfirmationData (profiles 4.1.4.2), never from the envelope.
    pub fn answered_request(&self) -> Option<&str> {
        self.confirmations
            .iter()
            .filter(|c| c.method == BEARER)
            .find_map(|c| c.in_response_to.as_deref())
    }
}

fn instant(el: &Element, attr: &str) -> Result<Option<DateTime<Utc>>, Reject> {
    el.attr(attr)
        .map(|v| {
            parse_instant(v)
                .map_err(|e| reject(Reason::Malformed, format!("{}@{attr}: {e}", el.name)))
        })
        .transpose()
}

/// Element text, with the XML whitespace around it removed.
fn trimmed(text: &str) -> String {
    super::text::xml_trim(text).to_string()
}

/// An Issuer must be plain text: an Issuer holding elements is a wrapping attempt.
fn issuer_text(el: &Element) -> Result<String, Reject> {
    if !el.children.is_empty() {
        return Err(reject(
            Reason::Malformed,
            "an Issuer element contains child elements",
        ));
    }
    Ok(trimmed(&el.text))
}

pub fn envelope(root: &Element) -> Result<Envelope, Reject> {
    if !root.is(NS_PROTOCOL, "Response") {
        return Err(reject(
            Reason::Malformed,
            format!(
                "the root element is {{{}}}{}, expected samlp:Response",
                root.ns, root.name
            ),
        ));
    }
    let issuers: Vec<_> = root.children_named(NS_ASSERTION, "Issuer").collect();
    if issuers.len() > 1 {
        return Err(reject(
            Reason::Malformed,
            "the Response has more than one Issuer",
        ));
    }
    let status = root.child(NS_PROTOCOL, "Status");
    let code = status.and_then(|s| s.child(NS_PROTOCOL, "StatusCode"));
    let mut status_detail = Vec::new();
    let mut inner = code.and_then(|c| c.child(NS_PROTOCOL, "StatusCode"));
    while let Some(c) = inner {
        status_detail.push(c.attr("Value").unwrap_or_default().to_string());
        inner = c.child(NS_PROTOCOL, "StatusCode");
    }
    Ok(Envelope {
        id: root.attr("ID").unwrap_or_default().to_string(),
        version: root.attr("Version").unwrap_or_default().to_string(),
        destination: root.attr("Destination").map(str::to_string),
        in_response_to: root.attr("InResponseTo").map(str::to_string),
        issuer: issuers.first().map(|i| issuer_text(i)).transpose()?,
        status_code: code
            .and_then(|c| c.attr("Value"))
            .unwrap_or_default()
            .to_string(),
        status_detail,
        status_message: status
            .and_then(|s| s.child(NS_PROTOCOL, "StatusMessage"))
            .map(|m| trimmed(&m.deep_text())),
        assertions: root
            .children_named(NS_ASSERTION, "Assertion")
            .cloned()
            .collect(),
        encrypted_assertions: root
            .children_named(NS_ASSERTION, "EncryptedAssertion")
            .count(),
        signed: false,
    })
}

pub fn assertion(el: &Element) -> Result<Assertion, Reject> {
    if !el.is(NS_ASSERTION, "Assertion") {
        return Err(reject(
            Reason::Malformed,
            format!("expected saml:Assertion, found {}", el.name),
        ));
    }
    let issuer = el
        .child(NS_ASSERTION, "Issuer")
        .map(issuer_text)
        .transpose()?
        .ok_or_else(|| reject(Reason::UnknownIssuer, "the Assertion has no Issuer"))?;
    let subject = el.child(NS_ASSERTION, "Subject");
    let name_id = subject
        .and_then(|s| s.child(NS_ASSERTION, "NameID"))
        .map(|n| NameId {
            value: trimmed(&n.deep_text()),
            format: n.attr("Format").map(str::to_string),
        });
    let mut confirmations = Vec::new();
    for c in subject
        .into_iter()
        .flat_map(|s| s.children_named(NS_ASSERTION, "SubjectConfirmation"))
    {
        let data = c.child(NS_ASSERTION, "SubjectConfirmationData");
        confirmations.push(Confirmation {
            method: c.attr("Method").unwrap_or_default().to_string(),
            recipient: data.and_then(|d| d.attr("Recipient")).map(str::to_string),
            not_before: data.map(|d| instant(d, "NotBefore")).transpose()?.flatten(),
            not_on_or_after: data
                .map(|d| instant(d, "NotOnOrAfter"))
                .transpose()?
                .flatten(),
            in_response_to: data
                .and_then(|d| d.attr("InResponseTo"))
                .map(str::to_string),
        });
    }
    let conditions = el.child(NS_ASSERTION, "Conditions");
    let audience_restrictions = conditions
        .into_iter()
        .flat_map(|c| c.children_named(NS_ASSERTION, "AudienceRestriction"))
        .map(|r| {
            r.children_named(NS_ASSERTION, "Audience")
                .map(|a| trimmed(&a.text))
                .collect()
        })
        .collect();
    let authn = el.child(NS_ASSERTION, "AuthnStatement");
    let mut attributes: Vec<Attribute> = Vec::new();
    for statement in el.children_named(NS_ASSERTION, "AttributeStatement") {
        for a in statement.children_named(NS_ASSERTION, "Attribute") {
            let name = a.attr("Name").unwrap_or_default().to_string();
            let values: Vec<String> = a
                .children_named(NS_ASSERTION, "AttributeValue")
                .map(|v| v.deep_text())
                .collect();
            // The same attribute split over several elements is one attribute.
            if let Some(existing) = attributes.iter_mut().find(|x| x.name == name) {
                existing.values.extend(values);
            } else {
                attributes.push(Attribute {
                    name,
                    friendly_name: a.attr("FriendlyName").map(str::to_string),
                    values,
                });
            }
        }
    }
    Ok(Assertion {
        id: el.attr("ID").unwrap_or_default().to_string(),
        issuer,
        issue_instant: instant(el, "IssueInstant")?,
        encrypted_id: subject.is_some_and(|s| s.child(NS_ASSERTION, "EncryptedID").is_some()),
        name_id,
        confirmations,
        not_before: conditions
            .map(|c| instant(c, "NotBefore"))
            .transpose()?
            .flatten(),
        not_on_or_after: conditions
            .map(|c| instant(c, "NotOnOrAfter"))
            .transpose()?
            .flatten(),
        audience_restrictions,
        authn_instant: authn
            .map(|a| instant(a, "AuthnInstant"))
            .transpose()?
            .flatten(),
        session_index: authn
            .and_then(|a| a.attr("SessionIndex"))
            .map(str::to_string),
        session_not_on_or_after: authn
            .map(|a| instant(a, "SessionNotOnOrAfter"))
            .transpose()?
            .flatten(),
        has_authn_statement: authn.is_some(),
        attributes,
    })
}

/// True when the element is a ds:Signature (skipped when copying the envelope).
pub fn is_signature(el_ns: &str, el_name: &str) -> bool {
    el_ns == NS_DSIG && el_name == "Signature"
}
