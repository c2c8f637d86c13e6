//! Step 5: the SAML Web Browser SSO profile checks, one function per check in
//! the order the profile states them, each failure with its own reason and a
//! DETAIL that says what was expected.

use chrono::{DateTime, Duration, Utc};

use super::extract::{Assertion, Attribute, Envelope, BEARER, STATUS_SUCCESS};
use super::time::show;
use super::{reject, Reason, Reject};

/// The IdP's policy and the SP it serves, as configured in SQL.
#[derive(Debug, Clone)]
pub struct Policy {
    pub idp_entity_id: String,
    pub sp_entity_id: String,
    pub acs_url: String,
    pub allow_sha1: bool,
    pub require_audience: bool,
    pub allow_idp_initiated: bool,
    pub clock_skew: Duration,
    pub user_key: String,
}

/// An assertion that passed every check.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub assertion_id: String,
    pub subject: String,
    pub name_id: Option<String>,
    pub name_id_format: Option<String>,
    pub attributes: Vec<Attribute>,
    pub session_index: Option<String>,
    pub session_not_on_or_after: Option<DateTime<Utc>>,
    /// Until when the assertion could be replayed: the replay row's lifetime.
    pub valid_until: DateTime<Utc>,
}

/// How long a replay row lives when the assertion states no NotOnOrAfter.
const DEFAULT_REPLAY_WINDOW: i64 = 24 * 3600;

/// What every check looks at.
pub struct Inputs<'a> {
    pub envelope: &'a Envelope,
    pub assertion: &'a Assertion,
    pub policy: &'a Policy,
    pub now: DateTime<Utc>,
    pub in_response_to: Option<&'a str>,
}

type Check = fn(&Inputs<'_>) -> Result<(), Reject>;

/// The profile checks in the order they run, each with the name
/// saml_jit_explain shows.
pub const CHECKS: [(&str, Check); 11] = [
    ("version", |i| check_version(i.envelope)),
    ("issuer", |i| {
        check_issuer(i.envelope, i.assertion, i.policy)
    }),
    ("status", |i| check_status(i.envelope)),
    ("destination", |i| check_destination(i.envelope, i.policy)),
    ("in_response_to", |i| {
        check_in_response_to(i.envelope, i.assertion, i.policy, i.in_response_to)
    }),
    ("conditions_time", |i| {
        check_conditions_time(i.assertion, i.policy, i.now)
    }),
    ("audience", |i| check_audience(i.assertion, i.policy)),
    ("subject_confirmation", |i| {
        check_bearer_confirmation(i.assertion, i.policy, i.now, i.in_response_to)
    }),
    ("authn_statement", |i| check_authn_statement(i.assertion)),
    ("session", |i| check_session(i.assertion, i.policy, i.now)),
    ("subject", |i| subject(i.assertion, i.policy).map(|_| ())),
];

pub fn validate(
    envelope: &Envelope,
    assertion: &Assertion,
    policy: &Policy,
    now: DateTime<Utc>,
    in_response_to: Option<&str>,
) -> Result<Accepted, Reject> {
    let inputs = Inputs {
        envelope,
        assertion,
        policy,
        now,
        in_response_to,
    };
    for (_, check) in CHECKS {
        check(&inputs)?;
    }
    let (subject, name_id) = subject(assertion, policy)?;
    let latest = [assertion.not_on_or_after]
        .into_iter()
        .chain(assertion.confirmations.iter().map(|c| c.not_on_or_after))
        .flatten()
        .max()
        .unwrap_or(now + Duration::seconds(DEFAULT_REPLAY_WINDOW));
    Ok(Accepted {
        assertion_id: assertion.id.clone(),
        subject,
        name_id: name_id.as_ref().map(|n| n.value.clone()),
        name_id_format: name_id.and_then(|n| n.format),
        attributes: assertion.attributes.clone(),
        session_index: assertion.session_index.clone(),
        session_not_on_or_after: assertion.session_not_on_or_after,
        valid_until: latest + policy.clock_skew,
    })
}

fn check_version(envelope: &Envelope) -> Result<(), Reject> {
    if envelope.version != "2.0" {
        return Err(reject(
            Reason::Malformed,
            format!(
                "Response Version is {:?}; only SAML 2.0 is accepted",
                envelope.version
            ),
        ));
    }
    Ok(())
}

pub fn check_status(envelope: &Envelope) -> Result<(), Reject> {
    if envelope.status_code != STATUS_SUCCESS {
        let mut detail = format!("the IdP answered with status {:?}", envelope.status_code);
        if !envelope.status_detail.is_empty() {
            detail.push_str(&format!(" ({})", envelope.status_detail.join(", ")));
        }
        if let Some(msg) = &envelope.status_message {
            detail.push_str(&format!(": {msg}"));
        }
        detail.push_str("; the user was not authenticated by the IdP");
        return Err(reject(Reason::StatusNotSuccess, detail));
    }
    Ok(())
}

fn check_issuer(envelope: &Envelope, assertion: &Assertion, policy: &Policy) -> Result<(), Reject> {
    let expected = &policy.idp_entity_id;
    if let Some(issuer) = &envelope.issuer {
        if issuer != expected {
            return Err(reject(
                Reason::UnknownIssuer,
                format!(
                    "the Response Issuer is {issuer:?} but the Assertion comes from {expected:?}"
                ),
            ));
        }
    }
    if &assertion.issuer != expected {
        return Err(reject(
            Reason::UnknownIssuer,
            format!(
                "the Assertion Issuer is {:?}, expected {expected:?}",
                assertion.issuer
            ),
        ));
    }
    Ok(())
}

fn check_destination(envelope: &Envelope, policy: &Policy) -> Result<(), Reject> {
    match &envelope.destination {
        Some(d) if d != &policy.acs_url => Err(reject(
            Reason::DestinationMismatch,
            format!(
                "the Response was sent to Destination {d:?}, but this SP's ACS URL is {:?}",
                policy.acs_url
            ),
        )),
        // A signed message must say where it was meant to go (bindings
        // 3.5.5.2), or a response signed for another endpoint could be
        // forwarded here.
        None if envelope.signed => Err(reject(
            Reason::DestinationMismatch,
            format!(
                "the Response is signed but has no Destination; a signed Response must name the \
                 ACS it was sent to (SAML bindings 3.5.5.2), here {:?}",
                policy.acs_url
            ),
        )),
        _ => Ok(()),
    }
}

/// Whether the response answers a request, judged by what was signed: the
/// bearer SubjectConfirmationData's InResponseTo (profiles 4.1.4.2). The
/// Response's own InResponseTo may be unsigned, so it can only make a
/// response fail: it must agree with what the assertion answers.
fn check_in_response_to(
    envelope: &Envelope,
    assertion: &Assertion,
    policy: &Policy,
    expected: Option<&str>,
) -> Result<(), Reject> {
    let mismatch = |detail: String| Err(reject(Reason::InResponseToMismatch, detail));
    let answered = assertion.answered_request();
    if let Some(got) = envelope.in_response_to.as_deref() {
        if let Some(want) = expected.filter(|want| *want != got) {
            return mismatch(format!(
                "the Response answers request {got:?}, but the application sent {want:?}"
            ));
        }
        if answered.is_none() {
            return mismatch(format!(
                "the Response claims to answer request {got:?}, but its assertion's signed bearer \
                 SubjectConfirmationData answers no request (it is IdP-initiated)"
            ));
        }
    }
    match (expected, answered) {
        (Some(want), None) => mismatch(format!(
            "the application expects an answer to request {want:?}, but the assertion answers no \
             request (IdP-initiated: its signed SubjectConfirmationData has no InResponseTo)"
        )),
        (None, None) if !policy.allow_idp_initiated => Err(reject(
            Reason::Unsolicited,
            "the assertion answers no request (IdP-initiated login: its signed \
             SubjectConfirmationData has no InResponseTo) and this IdP has allow_idp_initiated = false",
        )),
        _ => Ok(()),
    }
}

/// Web Browser SSO is about an authentication: the assertion must carry an
/// AuthnStatement (profiles 4.1.4.2), or an attribute-only assertion could
/// log a user in.
fn check_authn_statement(assertion: &Assertion) -> Result<(), Reject> {
    if !assertion.has_authn_statement {
        return Err(reject(
            Reason::Malformed,
            "the Assertion has no AuthnStatement; an assertion used to log in must state how the \
             user authenticated (SAML profiles 4.1.4.2)",
        ));
    }
    Ok(())
}

fn check_conditions_time(
    assertion: &Assertion,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<(), Reject> {
    if let Some(nb) = assertion.not_before {
        not_before("Conditions NotBefore", nb, policy.clock_skew, now)?;
    }
    if let Some(noa) = assertion.not_on_or_after {
        not_on_or_after("Conditions NotOnOrAfter", noa, policy.clock_skew, now)?;
    }
    Ok(())
}

fn not_before(
    what: &str,
    bound: DateTime<Utc>,
    skew: Duration,
    now: DateTime<Utc>,
) -> Result<(), Reject> {
    if now + skew < bound {
        return Err(reject(
            Reason::NotYetValid,
            format!(
                "{what} is {}, now is {}: {} s too early, beyond the allowed clock skew of {} s",
                show(bound),
                show(now),
                (bound - now).num_seconds(),
                skew.num_seconds()
            ),
        ));
    }
    Ok(())
}

fn not_on_or_after(
    what: &str,
    bound: DateTime<Utc>,
    skew: Duration,
    now: DateTime<Utc>,
) -> Result<(), Reject> {
    if now - skew >= bound {
        return Err(reject(
            Reason::Expired,
            format!(
                "{what} is {}, now is {}: {} s late, beyond the allowed clock skew of {} s",
                show(bound),
                show(now),
                (now - bound).num_seconds(),
                skew.num_seconds()
            ),
        ));
    }
    Ok(())
}

fn check_audience(assertion: &Assertion, policy: &Policy) -> Result<(), Reject> {
    if assertion.audience_restrictions.is_empty() {
        if policy.require_audience {
            return Err(reject(
                Reason::AudienceMismatch,
                format!(
                    "the Assertion has no AudienceRestriction, and this IdP has require_audience = true \
                     (expected audience {:?})",
                    policy.sp_entity_id
                ),
            ));
        }
        return Ok(());
    }
    // Several AudienceRestrictions must all be satisfied (SAML core 2.5.1.4).
    for audiences in &assertion.audience_restrictions {
        if !audiences.iter().any(|a| a == &policy.sp_entity_id) {
            return Err(reject(
                Reason::AudienceMismatch,
                format!(
                    "the Assertion is meant for {audiences:?}, not for this SP {:?}",
                    policy.sp_entity_id
                ),
            ));
        }
    }
    Ok(())
}

fn check_bearer_confirmation(
    assertion: &Assertion,
    policy: &Policy,
    now: DateTime<Utc>,
    in_response_to: Option<&str>,
) -> Result<(), Reject> {
    let bearers: Vec<_> = assertion
        .confirmations
        .iter()
        .filter(|c| c.method == BEARER)
        .collect();
    if bearers.is_empty() {
        return Err(reject(
            Reason::SubjectMissing,
            "the Assertion has no bearer SubjectConfirmation (Web Browser SSO requires one)",
        ));
    }
    let mut first_failure = None;
    for c in bearers {
        let outcome = (|| {
            match &c.recipient {
                Some(r) if r == &policy.acs_url => {}
                other => {
                    return Err(reject(
                        Reason::RecipientMismatch,
                        format!(
                            "the SubjectConfirmationData Recipient is {other:?}, but this SP's ACS URL is {:?}",
                            policy.acs_url
                        ),
                    ))
                }
            }
            if let Some(nb) = c.not_before {
                not_before(
                    "SubjectConfirmationData NotBefore",
                    nb,
                    policy.clock_skew,
                    now,
                )?;
            }
            // Without NotOnOrAfter a bearer assertion would be valid forever,
            // and accepted again once its replay row was purged.
            let Some(noa) = c.not_on_or_after else {
                return Err(reject(
                    Reason::SubjectMissing,
                    "the bearer SubjectConfirmationData has no NotOnOrAfter; a bearer assertion \
                     must limit how long it can be used (SAML profiles 4.1.4.2)",
                ));
            };
            not_on_or_after(
                "SubjectConfirmationData NotOnOrAfter",
                noa,
                policy.clock_skew,
                now,
            )?;
            if let Some(want) = in_response_to {
                let got = c.in_response_to.as_deref();
                if got != Some(want) {
                    return Err(reject(
                        Reason::InResponseToMismatch,
                        format!(
                            "the SubjectConfirmationData answers request {got:?}, but the application sent {want:?}"
                        ),
                    ));
                }
            }
            Ok(())
        })();
        match outcome {
            Ok(()) => return Ok(()),
            Err(e) => {
                first_failure.get_or_insert(e);
            }
        }
    }
    Err(first_failure.expect("at least one bearer confirmation was checked"))
}

fn check_session(assertion: &Assertion, policy: &Policy, now: DateTime<Utc>) -> Result<(), Reject> {
    if let Some(end) = assertion.session_not_on_or_after {
        not_on_or_after(
            "AuthnStatement SessionNotOnOrAfter",
            end,
            policy.clock_skew,
            now,
        )?;
    }
    Ok(())
}

fn subject(
    assertion: &Assertion,
    policy: &Policy,
) -> Result<(String, Option<super::extract::NameId>), Reject> {
    if assertion.encrypted_id {
        return Err(reject(
            Reason::EncryptedUnsupported,
            "the Subject carries an EncryptedID; encrypted identifiers are not supported yet",
        ));
    }
    let name_id = assertion.name_id.clone().filter(|n| !n.value.is_empty());
    if policy.user_key == "name_id" {
        let Some(n) = &name_id else {
            return Err(reject(
                Reason::SubjectMissing,
                "the Assertion has no (or an empty) NameID, and this IdP identifies users by NameID \
                 (user_key = 'name_id'); configure the IdP to send one, or set user_key to an attribute",
            ));
        };
        return Ok((n.value.clone(), name_id));
    }
    let value = assertion
        .attributes
        .iter()
        .find(|a| {
            a.name == policy.user_key
                || a.friendly_name.as_deref() == Some(policy.user_key.as_str())
        })
        .and_then(|a| a.values.first())
        .map(|v| super::text::xml_trim(v).to_string())
        .filter(|v| !v.is_empty());
    match value {
        Some(v) => Ok((v, name_id)),
        None => Err(reject(
            Reason::SubjectMissing,
            format!(
                "this IdP identifies users by the attribute {:?} (user_key), which the Assertion lacks or leaves empty",
                policy.user_key
            ),
        )),
    }
}
