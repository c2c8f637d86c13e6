//! The SQL boundary: SQL types in, SQL types out, errors turned into ereport
//! with SQLSTATE. No SAML logic here.

use chrono::{DateTime, Utc};
use pgrx::prelude::*;

/// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// A chrono instant as a `timestamptz`.
pub fn timestamptz(t: DateTime<Utc>) -> TimestampWithTimeZone {
    let micros = t.timestamp_micros() - PG_EPOCH_OFFSET_MICROS;
    TimestampWithTimeZone::try_from(micros).unwrap_or_else(|_| {
        if micros > 0 {
            TimestampWithTimeZone::positive_infinity()
        } else {
            TimestampWithTimeZone::negative_infinity()
        }
    })
}

/// Raises an ERROR with a SQLSTATE, a message, and optionally DETAIL and HINT.
pub fn raise(
    code: PgSqlErrorCode,
    message: String,
    detail: Option<String>,
    hint: Option<&str>,
) -> ! {
    let mut report = pgrx::pg_sys::panic::ErrorReport::new(code, message, "saml_jit");
    if let Some(detail) = detail {
        report = report.set_detail(detail);
    }
    if let Some(hint) = hint {
        report = report.set_hint(hint);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

use pgrx::{Inet, JsonB, Uuid};
use serde_json::json;

use crate::gucs;
use crate::provision::changes::{attribute_changes, changed_columns, group_changes};
use crate::provision::config;
use crate::provision::expiry::expiry;
use crate::provision::mapping::map_attributes;
use crate::provision::rejections::{self, Rejection};
use crate::provision::store::{self, AuditEntry, RequestState, Upsert};
use crate::saml::decrypt::SpKey;
use crate::saml::response::{accept, receive, verify};
use crate::saml::{reject, Reason, Reject};

type LoginRow = (
    Uuid,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Vec<String>,
    JsonB,
    String,
    Option<TimestampWithTimeZone>,
);

/// Verifies a base64 SAMLResponse and provisions its user, in the caller's
/// transaction. A rejection raises SQLSTATE 28000 with the reason code.
#[pg_extern(security_definer, volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)]
fn saml_jit_login(
    response: &str,
    in_response_to: default!(Option<&str>, "NULL"),
    client_addr: default!(Option<Inet>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(user_id, Uuid),
        name!(idp_entity_id, String),
        name!(subject, String),
        name!(name_id, Option<String>),
        name!(email, Option<String>),
        name!(display_name, Option<String>),
        name!(groups, Vec<String>),
        name!(attributes, JsonB),
        name!(action, String),
        name!(session_not_on_or_after, Option<TimestampWithTimeZone>),
    ),
> {
    let client_addr = client_addr.map(|a| a.0);
    let mut seen = Seen::default();
    match login(response, in_response_to, client_addr.clone(), &mut seen) {
        Ok(row) => TableIterator::once(row),
        Err(LoginError::Rejected(r)) => {
            rejections::record(&Rejection {
                reason: r.code(),
                detail: &r.detail,
                idp_id: seen.idp_id,
                issuer: seen.issuer.as_deref(),
                subject: seen.subject.as_deref(),
                assertion_id: seen.assertion_id.as_deref(),
                client_addr: client_addr.as_deref(),
            });
            raise_rejection(&r)
        }
        Err(LoginError::Spi(e)) => raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("saml_jit: database error during login: {e}"),
            None,
            None,
        ),
        Err(LoginError::Setting(msg)) => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            msg,
            None,
            None,
        ),
    }
}

/// What a login had learned when it stopped: the audit row of a rejection.
#[derive(Default)]
struct Seen {
    idp_id: Option<i64>,
    issuer: Option<String>,
    subject: Option<String>,
    assertion_id: Option<String>,
}

enum LoginError {
    Rejected(Reject),
    Spi(pgrx::spi::SpiError),
    Setting(String),
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

fn raise_rejection(r: &Reject) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
        r.to_string(),
        Some(r.detail.clone()),
        None,
    )
}

fn login(
    response: &str,
    in_response_to: Option<&str>,
    client_addr: Option<String>,
    seen: &mut Seen,
) -> Result<LoginRow, LoginError> {
    let now = gucs::now().map_err(LoginError::Setting)?;
    let incoming = receive(response, gucs::max_response_bytes())?;
    seen.issuer = Some(incoming.claimed_issuer.clone());
    seen.assertion_id = incoming.claimed_assertion_id.clone();
    let snapshot = config::idp(&incoming.claimed_issuer)?.ok_or_else(|| {
        reject(
            Reason::UnknownIssuer,
            format!(
                "no trusted IdP has entity ID {:?}; trust it with saml_jit_add_idp(entity_id, certificate)",
                incoming.claimed_issuer
            ),
        )
    })?;
    let idp = &snapshot.config;
    seen.idp_id = Some(idp.id);
    if !idp.enabled {
        return Err(reject(
            Reason::IdpDisabled,
            format!(
                "the IdP {:?} is disabled (saml_jit.identity_provider.enabled = false)",
                idp.policy.idp_entity_id
            ),
        )
        .into());
    }
    let keys = snapshot.trusted_keys(now);
    let sp_key = if incoming.is_encrypted() {
        store::sp_private_key(idp.sp_id)?.and_then(|pem| SpKey::from_pem(&pem).ok())
    } else {
        None
    };
    // Every step before is bounded (shape.rs); a cancel or statement_timeout
    // that arrived meanwhile ends the login here rather than after it.
    pg_sys::check_for_interrupts!();
    let verified = verify(&incoming, &keys, idp.policy.allow_sha1, sp_key.as_ref())?;
    pg_sys::check_for_interrupts!();
    seen.subject = verified.assertion.name_id.as_ref().map(|n| n.value.clone());
    // A response to an AuthnRequest must answer one this SP sent and nobody
    // answered yet. (Rolled back with everything else if a later check fails.)
    // The request is the one the signed assertion answers (its bearer
    // SubjectConfirmationData), never the possibly unsigned envelope's.
    let answered_request = match verified.assertion.answered_request() {
        Some(request_id) => {
            answered_request(idp, request_id, &verified.assertion.id, in_response_to, now)?
        }
        None => None,
    };
    let accepted = accept(
        &verified,
        &idp.policy,
        now,
        in_response_to.or(answered_request.as_deref()),
    )?;
    seen.subject = Some(accepted.subject.clone());
    let replay = || -> LoginError {
        reject(
            Reason::Replay,
            format!(
                "assertion {:?} from {:?} was already used; every assertion is accepted once",
                accepted.assertion_id, idp.policy.idp_entity_id
            ),
        )
        .into()
    };
    // A replayed assertion says `replay` before anything about its contents:
    // the upsert statement records the assertion on success, and a mapping
    // refusal first checks for replay on its own.
    let mapped = (|| {
        let mut user = map_attributes(&accepted.attributes, &snapshot.mapping_rules)?;
        user.groups = store::map_groups(
            idp,
            snapshot.has_group_rules,
            std::mem::take(&mut user.groups),
        )?;
        Ok::<_, LoginError>((user, expiry(&idp.expiry, &accepted.attributes, now)?))
    })();
    let (user, expiry) = match mapped {
        Ok(mapped) => mapped,
        Err(e) => {
            if !store::consume_assertion(idp.id, &accepted.assertion_id, accepted.valid_until)? {
                return Err(replay());
            }
            return Err(e);
        }
    };
    let login_audit = store::LoginAudit {
        assertion_id: &accepted.assertion_id,
        valid_until: accepted.valid_until,
        client_addr: client_addr.clone(),
        login_detail: json!({
            "certificate_id": verified.certificate_id(),
            "response_signed": verified.response_signature.is_some(),
            "assertion_signed": verified.assertion_signature.is_some(),
            "session_index": accepted.session_index,
        }),
        sources: sources_json(&user.sources),
    };
    // The upsert also writes the 'login' row and, for a new user, 'created'.
    let done = match store::upsert_user(idp, &accepted, &user, &expiry, login_audit)? {
        Upsert::Done(done) => done,
        Upsert::Replayed => return Err(replay()),
        Upsert::Disabled => {
            return Err(reject(
                Reason::UserDisabled,
                format!("the user {:?} of this IdP is disabled", accepted.subject),
            )
            .into())
        }
        Upsert::NotProvisioned => {
            return Err(reject(
                Reason::ProvisioningDisabled,
                format!(
                    "the user {:?} does not exist and this IdP has jit_create = false",
                    accepted.subject
                ),
            )
            .into())
        }
    };
    if let (Some(before), Some(after)) = (&done.before, &done.after) {
        let rows = change_audit(
            before,
            after,
            done.attributes_change.as_ref(),
            &user.sources,
        );
        if !rows.is_empty() {
            let entry = |(event, detail)| AuditEntry {
                event,
                reason: None,
                idp_id: Some(idp.id),
                user_id: Some(done.user_id),
                subject: Some(&accepted.subject),
                assertion_id: Some(&accepted.assertion_id),
                client_addr: client_addr.clone(),
                detail,
            };
            store::audit(rows.into_iter().map(entry).collect())?;
        }
    }
    Ok((
        done.user_id,
        idp.policy.idp_entity_id.clone(),
        accepted.subject.clone(),
        accepted.name_id.clone(),
        done.email,
        done.display_name,
        done.groups,
        JsonB(user.attributes),
        if done.created { "created" } else { "updated" }.to_string(),
        accepted.session_not_on_or_after.map(timestamptz),
    ))
}

/// The audit rows of what a login changed on an existing user: 'reactivated'
/// when its status moved, 'updated' when any audited value did.
fn change_audit(
    before: &serde_json::Value,
    after: &serde_json::Value,
    attributes_change: Option<&serde_json::Value>,
    sources: &[(String, String)],
) -> Vec<(&'static str, serde_json::Value)> {
    let mut rows = Vec::new();
    let mut changes = changed_columns(before, after, sources);
    if let Some(change) = attributes_change {
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
    rows
}

extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

/// The version of the loaded library and of the installed SQL objects; they
/// differ after a package upgrade until `ALTER EXTENSION saml_jit UPDATE`.
#[pg_extern(stable)]
fn saml_jit_version() -> TableIterator<'static, (name!(library, String), name!(sql, Option<String>))>
{
    let sql = Spi::get_one::<String>(
        "SELECT extversion::text FROM pg_catalog.pg_extension WHERE extname = 'saml_jit'",
    )
    .unwrap_or(None);
    TableIterator::once((env!("CARGO_PKG_VERSION").to_string(), sql))
}

fn sources_json(sources: &[(String, String)]) -> serde_json::Value {
    sources
        .iter()
        .map(|(c, a)| (c.clone(), serde_json::Value::String(a.clone())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The request a response answers, consumed from saml_jit.authn_request.
fn answered_request(
    idp: &store::IdpConfig,
    request_id: &str,
    assertion_id: &str,
    expected: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<String>, LoginError> {
    let mismatch = |why: String| -> LoginError { reject(Reason::InResponseToMismatch, why).into() };
    match store::consume_request(idp.id, request_id, now)? {
        RequestState::Answered => Ok(Some(request_id.to_string())),
        // The application passed in_response_to: it tracks its own requests.
        RequestState::Unknown if expected.is_some() => Ok(None),
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
