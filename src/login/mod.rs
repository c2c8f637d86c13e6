//! One login, as the row of steps in DESIGN.md:
//!
//! decode -> verify -> validate -> record -> map -> entitle -> upsert -> hook -> audit
//!
//! `run` reads as that row; each step is a function below. The SQL boundary
//! (api.rs) calls `run` and turns its error into an ereport; this module
//! calls down into `saml` (pure) and `provision` (SPI), never up.

pub mod hook;

use chrono::{DateTime, Utc};
use pgrx::prelude::*;
use pgrx::Uuid;
use serde_json::json;

use crate::gucs;
use crate::provision::changes::{attribute_changes, changed_columns, group_changes};
use crate::provision::config::{self, IdpSnapshot};
use crate::provision::entitle::{check_email, check_groups};
use crate::provision::expiry::{expiry, Expiry};
use crate::provision::mapping::{map_attributes, UserRecord};
use crate::provision::store::{
    self, AuditEntry, IdpConfig, NewSession, Provisioned, RequestState, Upsert,
};
use crate::saml::decrypt::SpKey;
use crate::saml::response::{accept, receive, verify, Incoming, Verified};
use crate::saml::validate::Accepted;
use crate::saml::{reject, Reason, Reject};

/// What a successful login returns (the row of saml_jit_login).
pub struct Outcome {
    pub user_id: Uuid,
    pub idp_entity_id: String,
    pub subject: String,
    pub name_id: Option<String>,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub groups: Vec<String>,
    pub attributes: serde_json::Value,
    pub action: &'static str,
    pub session_not_on_or_after: Option<DateTime<Utc>>,
    pub email_verified: bool,
    pub session_id: Uuid,
    pub relay_state: Option<String>,
}

/// What a login had learned when it stopped: the audit row of a rejection.
#[derive(Default)]
pub struct Seen {
    pub idp_id: Option<i64>,
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub assertion_id: Option<String>,
}

pub enum LoginError {
    Rejected(Reject),
    Spi(pgrx::spi::SpiError),
    /// A setting that makes every login fail (an unparsable clock override).
    Setting(String),
    /// saml_jit_login called from inside an on_login hook.
    Nested,
}

impl From<Reject> for LoginError {
    fn from(r: Reject) -> Self {
        LoginError::Rejected(r)
    }
}

impl From<pgrx::spi::SpiError> for LoginError {
    fn from(e: pgrx::spi::SpiError) -> Self {
        LoginError::Spi(e)
    }
}

impl From<hook::HookError> for LoginError {
    fn from(e: hook::HookError) -> Self {
        match e {
            hook::HookError::Refused(r) => LoginError::Rejected(r),
            hook::HookError::Spi(e) => LoginError::Spi(e),
        }
    }
}

/// The request a login answers, as the caller and the signed assertion say.
pub struct Request<'a> {
    /// in_response_to passed by an application that tracks its own requests.
    pub expected: Option<&'a str>,
    pub client_addr: Option<String>,
}

pub fn run(response: &str, request: Request<'_>, seen: &mut Seen) -> Result<Outcome, LoginError> {
    if hook::running() {
        return Err(LoginError::Nested);
    }
    let now = gucs::now().map_err(LoginError::Setting)?;
    let incoming = receive(response, gucs::max_response_bytes())?;
    seen.issuer = Some(incoming.claimed_issuer.clone());
    seen.assertion_id = incoming.claimed_assertion_id.clone();
    let snapshot = trusted_idp(&incoming.claimed_issuer)?;
    let idp = &snapshot.config;
    seen.idp_id = Some(idp.id);
    let verified = verify_signature(&incoming, &snapshot, now)?;
    seen.subject = verified.assertion.name_id.as_ref().map(|n| n.value.clone());
    let answered = record_request(idp, &verified, request.expected, now)?;
    let accepted = accept(
        &verified,
        &idp.policy,
        now,
        request.expected.or(answered.request_id.as_deref()),
    )?;
    seen.subject = Some(accepted.subject.clone());
    let (user, expiry, email_verified) = match map_and_entitle(&snapshot, &accepted, now) {
        Ok(mapped) => mapped,
        // A replayed assertion says `replay` before anything about its
        // contents (a successful login records it in the upsert statement).
        Err(e) => {
            if !store::consume_assertion(idp.id, &accepted.assertion_id, accepted.valid_until)? {
                return Err(replay(idp, &accepted).into());
            }
            return Err(e);
        }
    };
    let session = NewSession {
        id: new_session_id(),
        session_index: accepted.session_index.clone(),
        name_id: accepted.name_id.clone(),
        not_on_or_after: accepted.session_not_on_or_after,
    };
    let session_id = session.id;
    let done = upsert(idp, &verified, &accepted, &user, &expiry, session, &request)?;
    audit_changes(idp, &accepted, &user, &done, &request)?;
    let outcome = Outcome {
        user_id: done.user_id,
        idp_entity_id: idp.policy.idp_entity_id.clone(),
        subject: accepted.subject.clone(),
        name_id: accepted.name_id.clone(),
        email: done.email.clone(),
        display_name: done.display_name.clone(),
        groups: done.groups.clone(),
        attributes: user.attributes,
        action: if done.created { "created" } else { "updated" },
        session_not_on_or_after: accepted.session_not_on_or_after,
        // Verified is said of the e-mail returned: the stored one (a mapping
        // with sync = 'on_create' may keep an older one).
        email_verified: email_verified
            && check_email(done.email.as_deref(), idp.email_domains.as_deref()) == Ok(true),
        session_id,
        relay_state: answered.relay_state,
    };
    if let Some(hook) = idp.hook {
        hook::call(hook, event(&outcome, &done, &accepted, &request))?;
    }
    Ok(outcome)
}

/// The IdP the response claims to come from, when it is trusted and enabled.
pub(crate) fn trusted_idp(issuer: &str) -> Result<std::rc::Rc<IdpSnapshot>, LoginError> {
    let snapshot = config::idp(issuer)?.ok_or_else(|| {
        reject(
            Reason::UnknownIssuer,
            format!(
                "no trusted IdP has entity ID {issuer:?}; trust it with saml_jit_add_idp(entity_id, certificate)"
            ),
        )
    })?;
    if !snapshot.config.enabled {
        return Err(reject(
            Reason::IdpDisabled,
            format!("the IdP {issuer:?} is disabled (saml_jit.identity_provider.enabled = false)"),
        )
        .into());
    }
    Ok(snapshot)
}

fn verify_signature(
    incoming: &Incoming,
    snapshot: &IdpSnapshot,
    now: DateTime<Utc>,
) -> Result<Verified, LoginError> {
    let idp = &snapshot.config;
    let keys = snapshot.trusted_keys(now);
    let sp_key = if incoming.is_encrypted() {
        Some(store::sp_private_keys(idp.sp_id)?)
            .filter(|pems| !pems.is_empty())
            .and_then(|pems| SpKey::from_pems(&pems).ok())
    } else {
        None
    };
    // Every step before is bounded (shape.rs); a cancel or statement_timeout
    // that arrived meanwhile ends the login here rather than after it.
    pg_sys::check_for_interrupts!();
    let verified = verify(incoming, &keys, idp.policy.allow_sha1, sp_key.as_ref())?;
    pg_sys::check_for_interrupts!();
    Ok(verified)
}

/// The AuthnRequest a response answers, consumed from saml_jit.authn_request.
#[derive(Default)]
struct Answered {
    request_id: Option<String>,
    relay_state: Option<String>,
}

/// A response to an AuthnRequest must answer one this SP sent and nobody
/// answered yet (rolled back with everything else if a later check fails).
/// The request is the one the signed assertion answers (its bearer
/// SubjectConfirmationData), never the possibly unsigned envelope's.
fn record_request(
    idp: &IdpConfig,
    verified: &Verified,
    expected: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Answered, LoginError> {
    let Some(request_id) = verified.assertion.answered_request() else {
        return Ok(Answered::default());
    };
    let assertion_id = &verified.assertion.id;
    let mismatch = |why: String| -> LoginError { reject(Reason::InResponseToMismatch, why).into() };
    match store::consume_request(idp.id, request_id, now)? {
        RequestState::Answered(relay_state) => Ok(Answered {
            request_id: Some(request_id.to_string()),
            relay_state,
        }),
        // The application passed in_response_to: it tracks its own requests.
        RequestState::Unknown if expected.is_some() => Ok(Answered::default()),
        RequestState::Unknown => Err(mismatch(format!(
            "the response answers request {request_id:?}, which this SP has no record of sending to {:?} \
             (requests come from saml_jit_authn_request; pass in_response_to if the application tracks its own)",
            idp.policy.idp_entity_id
        ))),
        // The same response posted again (back button, a stolen POST): say
        // replay, the precise reason, rather than the request's state.
        RequestState::AlreadyAnswered(_) if store::probe::assertion_consumed(idp.id, assertion_id)? => {
            Err(reject(
                Reason::Replay,
                format!(
                    "assertion {assertion_id:?} from {:?} was already used (it answered request {request_id:?}); \
                     every assertion is accepted once",
                    idp.policy.idp_entity_id
                ),
            )
            .into())
        }
        RequestState::AlreadyAnswered(at) => Err(mismatch(format!(
            "request {request_id:?} was already answered at {at}; each AuthnRequest is answered once"
        ))),
        RequestState::Expired(at) => Err(mismatch(format!(
            "request {request_id:?} expired at {at} (identity_provider.request_ttl); start the login again"
        ))),
    }
}

/// Map the signed attributes to a user, then entitle: the e-mail domain and
/// the required groups. Returns the user, its expiry and whether its e-mail
/// is verified.
fn map_and_entitle(
    snapshot: &IdpSnapshot,
    accepted: &Accepted,
    now: DateTime<Utc>,
) -> Result<(UserRecord, Expiry, bool), LoginError> {
    let idp = &snapshot.config;
    let mut user = map_attributes(&accepted.attributes, &snapshot.mapping_rules)?;
    user.groups = store::map_groups(
        idp,
        snapshot.has_group_rules,
        std::mem::take(&mut user.groups),
    )?;
    let email_verified = check_email(user.email.as_deref(), idp.email_domains.as_deref())?;
    check_groups(&user.groups, idp.required_groups.as_deref())?;
    let expiry = expiry(&idp.expiry, &accepted.attributes, now)?;
    Ok((user, expiry, email_verified))
}

/// A random (version 4) UUID for the session the login opens.
fn new_session_id() -> Uuid {
    let mut bytes = [0u8; 16];
    // SAFETY: fills the 16 bytes it is given.
    let ok = unsafe { pg_sys::pg_strong_random(bytes.as_mut_ptr().cast(), bytes.len()) };
    assert!(ok, "pg_strong_random failed");
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes)
}

fn replay(idp: &IdpConfig, accepted: &Accepted) -> Reject {
    reject(
        Reason::Replay,
        format!(
            "assertion {:?} from {:?} was already used; every assertion is accepted once",
            accepted.assertion_id, idp.policy.idp_entity_id
        ),
    )
}

/// One statement records the assertion against replay, creates or updates
/// the user, opens the session and writes the 'login' (and 'created') audit
/// rows.
fn upsert(
    idp: &IdpConfig,
    verified: &Verified,
    accepted: &Accepted,
    user: &UserRecord,
    expiry: &Expiry,
    session: NewSession,
    request: &Request<'_>,
) -> Result<Provisioned, LoginError> {
    let login_audit = store::LoginAudit {
        assertion_id: &accepted.assertion_id,
        valid_until: accepted.valid_until,
        client_addr: request.client_addr.clone(),
        login_detail: json!({
            "certificate_id": verified.certificate_id(),
            "response_signed": verified.response_signature.is_some(),
            "assertion_signed": verified.assertion_signature.is_some(),
            "session_index": accepted.session_index,
            "session_id": session.id.to_string(),
        }),
        sources: sources_json(&user.sources),
        session,
    };
    match store::upsert_user(idp, accepted, user, expiry, login_audit)? {
        Upsert::Done(done) => Ok(*done),
        Upsert::Replayed => Err(replay(idp, accepted).into()),
        Upsert::Disabled => Err(reject(
            Reason::UserDisabled,
            format!("the user {:?} of this IdP is disabled", accepted.subject),
        )
        .into()),
        Upsert::NotProvisioned => Err(reject(
            Reason::ProvisioningDisabled,
            format!(
                "the user {:?} does not exist and this IdP has jit_create = false",
                accepted.subject
            ),
        )
        .into()),
    }
}

/// The audit rows of what a login changed on an existing user: 'reactivated'
/// when its status moved, 'updated' when any audited value did.
fn audit_changes(
    idp: &IdpConfig,
    accepted: &Accepted,
    user: &UserRecord,
    done: &Provisioned,
    request: &Request<'_>,
) -> Result<(), LoginError> {
    let (Some(before), Some(after)) = (&done.before, &done.after) else {
        return Ok(());
    };
    let mut rows = Vec::new();
    let mut changes = changed_columns(before, after, &user.sources);
    if let Some(change) = &done.attributes_change {
        let keys = attribute_changes(&change["old"], &change["new"]);
        changes.insert("attributes".into(), keys.into());
    }
    if changes.contains_key("status") {
        rows.push((
            "reactivated",
            json!({"from": before["status"], "to": after["status"], "expires_at": after["expires_at"]}),
        ));
    }
    if !changes.is_empty() {
        let (added, removed) = group_changes(&before["groups"], &after["groups"]);
        rows.push((
            "updated",
            json!({"changes": changes, "groups_added": added, "groups_removed": removed}),
        ));
    }
    if rows.is_empty() {
        return Ok(());
    }
    let entry = |(event, detail)| AuditEntry {
        event,
        reason: None,
        idp_id: Some(idp.id),
        user_id: Some(done.user_id),
        subject: Some(&accepted.subject),
        assertion_id: Some(&accepted.assertion_id),
        client_addr: request.client_addr.clone(),
        detail,
    };
    store::audit(rows.into_iter().map(entry).collect())?;
    Ok(())
}

/// The event an on_login hook receives (API.md, "Fitting the application's
/// own data model").
fn event(
    outcome: &Outcome,
    done: &Provisioned,
    accepted: &Accepted,
    request: &Request<'_>,
) -> serde_json::Value {
    json!({
        "user_id": outcome.user_id.to_string(),
        "idp_entity_id": outcome.idp_entity_id,
        "subject": outcome.subject,
        "name_id": outcome.name_id,
        "email": outcome.email,
        "email_verified": outcome.email_verified,
        "display_name": outcome.display_name,
        "first_name": done.first_name,
        "last_name": done.last_name,
        "groups": outcome.groups,
        "attributes": outcome.attributes,
        "action": outcome.action,
        "session_id": outcome.session_id.to_string(),
        "client_addr": request.client_addr,
        "assertion_id": accepted.assertion_id,
    })
}

fn sources_json(sources: &[(String, String)]) -> serde_json::Value {
    sources
        .iter()
        .map(|(c, a)| (c.clone(), serde_json::Value::String(a.clone())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}
