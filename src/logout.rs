//! Single Logout at the SQL boundary and its flow.
//!
//! `saml_jit_logout` takes what the application's SLO endpoint received:
//! receive -> trusted IdP -> verify -> read -> destination, times, replay ->
//! end the sessions (an IdP's LogoutRequest) or take the answer to ours (a
//! LogoutResponse) -> audit -> the signed reply. `saml_jit_logout_request`
//! starts an SP-initiated logout: it ends the session here and returns the
//! signed LogoutRequest for the browser to carry to the IdP.

use chrono::{DateTime, Duration, Utc};
use pgrx::prelude::*;
use pgrx::Uuid;
use serde_json::json;

use crate::gucs;
use crate::login::{trusted_idp, LoginError};
use crate::outgoing::{encode, new_message_id, Binding, Encoded, SigningKey};
use crate::pg::{raise, timestamptz};
use crate::provision::rejections::{self, Rejection};
use crate::provision::store::{self, AuditEntry};
use crate::saml::decrypt::SpKey;
use crate::saml::dom::NS_ASSERTION;
use crate::saml::logout::{
    self, logout_request_xml, logout_response_xml, Header, Kind, Message, Received,
};
use crate::saml::time::parse_instant;
use crate::saml::{reject, Reason};

/// What this SP and the IdP have configured for Single Logout.
struct Endpoints {
    idp_id: i64,
    idp_entity_id: String,
    sp_entity_id: String,
    /// Where IdPs send logout messages (service_provider.slo_url).
    sp_slo_url: Option<String>,
    /// The IdP's SingleLogoutService per binding: (Location, ResponseLocation).
    redirect: Option<(String, Option<String>)>,
    post: Option<(String, Option<String>)>,
    /// How long a logout message is accepted after its IssueInstant, and how
    /// long our LogoutRequest stays answerable (identity_provider.request_ttl).
    ttl: Duration,
    private_key: Option<String>,
    certificate: Option<String>,
}

impl Endpoints {
    fn signing_key(&self) -> Option<SigningKey<'_>> {
        self.private_key.as_deref().map(|private_key| SigningKey {
            private_key,
            certificate: self.certificate.as_deref(),
        })
    }

    /// The IdP endpoint for a message: `preferred` binding when the IdP has
    /// it, else the other. `response` picks ResponseLocation when given.
    fn endpoint(&self, preferred: Binding, response: bool) -> Option<(Binding, String)> {
        let pick = |binding: Binding| {
            let slot = match binding {
                Binding::Redirect => &self.redirect,
                Binding::Post => &self.post,
            };
            slot.as_ref().map(|(location, response_location)| {
                let url = match response_location {
                    Some(r) if response => r.clone(),
                    _ => location.clone(),
                };
                (binding, url)
            })
        };
        let other = match preferred {
            Binding::Redirect => Binding::Post,
            Binding::Post => Binding::Redirect,
        };
        pick(preferred).or_else(|| pick(other))
    }
}

const ENDPOINTS: &str = "
    SELECT i.id, i.entity_id, sp.entity_id, sp.slo_url,
           i.slo_url_redirect, i.slo_response_url_redirect, i.slo_url_post, i.slo_response_url_post,
           (extract(epoch FROM i.request_ttl) * 1000000)::bigint, k.private_key, k.certificate
      FROM saml_jit.identity_provider i
      JOIN saml_jit.service_provider sp ON sp.id = i.sp_id
      LEFT JOIN saml_jit.sp_key k ON k.sp_id = sp.id AND k.state = 'current'
     WHERE i.id = $1";

fn endpoints(idp_id: i64) -> Result<Endpoints, pgrx::spi::SpiError> {
    Spi::connect(|client| {
        let r = client.select(ENDPOINTS, Some(1), &[idp_id.into()])?.first();
        let location =
            |at: usize| -> Result<Option<(String, Option<String>)>, pgrx::spi::SpiError> {
                Ok(r.get::<String>(at)?.map(|l| (l, None)))
            };
        let with_response = |slot: Option<(String, Option<String>)>, response: Option<String>| {
            slot.map(|(l, _)| (l, response))
        };
        Ok(Endpoints {
            idp_id: r.get(1)?.unwrap_or_default(),
            idp_entity_id: r.get(2)?.unwrap_or_default(),
            sp_entity_id: r.get(3)?.unwrap_or_default(),
            sp_slo_url: r.get(4)?,
            redirect: with_response(location(5)?, r.get(6)?),
            post: with_response(location(7)?, r.get(8)?),
            ttl: Duration::microseconds(r.get(9)?.unwrap_or(600_000_000)),
            private_key: r.get(10)?,
            certificate: r.get(11)?,
        })
    })
}

/// The row saml_jit_logout returns.
#[derive(Default)]
struct Outcome {
    kind: &'static str,
    user_id: Option<Uuid>,
    ended_sessions: Vec<Uuid>,
    status: String,
    reply: Option<Encoded>,
    relay_state: Option<String>,
}

/// What the audit row of a refused logout message names.
#[derive(Default)]
struct Seen {
    idp_id: Option<i64>,
    issuer: Option<String>,
    subject: Option<String>,
    message_id: Option<String>,
}

/// Verifies an IdP's logout message as the application's SLO endpoint
/// received it (`query_string`: the raw query string of an HTTP-Redirect;
/// without it the message came by HTTP-POST) and acts on it. A refusal
/// raises SQLSTATE 28000 with the reason code, as a login does.
#[pg_extern(security_definer, volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)]
fn saml_jit_logout(
    message: Option<&str>,
    query_string: default!(Option<&str>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(kind, String),
        name!(user_id, Option<Uuid>),
        name!(ended_sessions, Vec<Uuid>),
        name!(status, String),
        name!(reply_url, Option<String>),
        name!(reply_post_url, Option<String>),
        name!(reply_saml_response, Option<String>),
        name!(relay_state, Option<String>),
    ),
> {
    let mut seen = Seen::default();
    match run(message, query_string, &mut seen) {
        Ok(o) => {
            let (reply_url, post_url, post_value) =
                o.reply.map(Encoded::columns).unwrap_or_default();
            TableIterator::once((
                o.kind.to_string(),
                o.user_id,
                o.ended_sessions,
                o.status,
                reply_url,
                post_url,
                post_value,
                o.relay_state,
            ))
        }
        Err(LoginError::Rejected(r)) => {
            rejections::record(&Rejection {
                reason: r.code(),
                detail: &r.detail,
                idp_id: seen.idp_id,
                issuer: seen.issuer.as_deref(),
                subject: seen.subject.as_deref(),
                assertion_id: seen.message_id.as_deref(),
                client_addr: None,
            });
            // The prefix names what was refused; the reason codes are a login's.
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
                format!("SAML logout message rejected: {}", r.code()),
                Some(r.detail.clone()),
                None,
            )
        }
        Err(LoginError::Spi(e)) => internal(format!("database error during logout: {e}")),
        Err(LoginError::Setting(msg)) => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            msg,
            None,
            None,
        ),
        Err(LoginError::Nested) => internal("nested logout".into()),
    }
}

fn internal(message: String) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!("saml_jit: {message}"),
        None,
        None,
    )
}

fn run(
    message: Option<&str>,
    query_string: Option<&str>,
    seen: &mut Seen,
) -> Result<Outcome, LoginError> {
    let now = gucs::now().map_err(LoginError::Setting)?;
    let received = logout::receive(message, query_string, gucs::max_response_bytes())?;
    seen.issuer = Some(received.claimed_issuer.clone());
    seen.message_id = received.claimed_id.clone();
    let snapshot = trusted_idp(&received.claimed_issuer)?;
    let idp = &snapshot.config;
    seen.idp_id = Some(idp.id);
    // Every step before is bounded; see login::verify_signature.
    pg_sys::check_for_interrupts!();
    let verified = logout::verify(
        &received,
        &snapshot.trusted_keys(now),
        idp.policy.allow_sha1,
    )?;
    pg_sys::check_for_interrupts!();
    // The SP key is read only for a NameID encrypted to it.
    let sp_key = if verified.tree.child(NS_ASSERTION, "EncryptedID").is_some() {
        Some(store::sp_private_keys(idp.sp_id)?)
            .filter(|pems| !pems.is_empty())
            .and_then(|pems| SpKey::from_pems(&pems).ok())
    } else {
        None
    };
    let message = logout::read(
        &verified.tree,
        sp_key.as_ref(),
        &received.encrypted_id_namespaces(),
    )?;
    seen.subject = message.name_id.clone();
    // The IdP was chosen by the Issuer as read before verification; the
    // signed bytes must say the same.
    if message.issuer != received.claimed_issuer {
        return Err(reject(
            Reason::UnknownIssuer,
            format!(
                "the signed Issuer {:?} is not the Issuer {:?} the message was read with",
                message.issuer, received.claimed_issuer
            ),
        )
        .into());
    }
    let config = endpoints(idp.id)?;
    check_destination(&message, &config)?;
    let valid_until = check_times(&message, idp.policy.clock_skew, config.ttl, now)?;
    if !store::consume_assertion(idp.id, &message.id, valid_until)? {
        return Err(reject(
            Reason::Replay,
            format!(
                "logout message {:?} from {:?} was already received; every message is accepted once",
                message.id, config.idp_entity_id
            ),
        )
        .into());
    }
    let mut outcome = match received.kind {
        Kind::Request => end_sessions(&received, &message, &config, now)?,
        Kind::Response => take_answer(&message, &config, now)?,
    };
    store::audit(vec![AuditEntry {
        event: "logout",
        reason: None,
        idp_id: Some(idp.id),
        user_id: outcome.user_id,
        subject: message.name_id.as_deref(),
        assertion_id: Some(&message.id),
        client_addr: None,
        detail: json!({
            "kind": received.kind.name(),
            "binding": received.binding(),
            "certificate_id": verified.certificate_id,
            "session_index": message.session_indexes,
            "ended_sessions": outcome.ended_sessions.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "ended_by": (received.kind == Kind::Request).then_some("idp_logout"),
            "in_response_to": message.in_response_to,
            "status": outcome.status,
            "status_message": message.status_message,
            "reply": outcome.reply.as_ref().map(|r| match r {
                Encoded::Redirect(_) => "redirect",
                Encoded::Post { .. } => "post",
            }),
        }),
    }])?;
    if received.kind == Kind::Request {
        outcome.relay_state = received.relay_state.clone();
    }
    Ok(outcome)
}

/// A logout message must be addressed to this SP's SLO endpoint.
fn check_destination(message: &Message, config: &Endpoints) -> Result<(), LoginError> {
    let Some(slo_url) = &config.sp_slo_url else {
        return Err(reject(
            Reason::DestinationMismatch,
            "this SP has no Single Logout URL: set saml_jit.service_provider.slo_url to the endpoint \
             that receives logout messages (it is published in saml_jit_sp_metadata())",
        )
        .into());
    };
    match &message.destination {
        Some(d) if d == slo_url => Ok(()),
        Some(d) => Err(reject(
            Reason::DestinationMismatch,
            format!("the logout message is addressed to {d:?}, not this SP's slo_url {slo_url:?}"),
        )
        .into()),
        None => Err(reject(
            Reason::DestinationMismatch,
            "the logout message has no Destination; a signed message must name the endpoint it is for",
        )
        .into()),
    }
}

/// IssueInstant within the clock skew and not older than request_ttl;
/// a LogoutRequest's NotOnOrAfter not passed. Returns until when the
/// message ID must be remembered against replay.
fn check_times(
    message: &Message,
    skew: Duration,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, LoginError> {
    let instant = |text: &str, what: &str| {
        parse_instant(text).map_err(|e| reject(Reason::Malformed, format!("{what}: {e}")))
    };
    let issued = instant(&message.issue_instant, "IssueInstant")?;
    if issued > now + skew {
        return Err(reject(
            Reason::NotYetValid,
            format!(
                "the logout message was issued at {issued}, later than now ({now}) plus the clock skew"
            ),
        )
        .into());
    }
    let mut valid_until = issued + ttl + skew;
    if let Some(text) = &message.not_on_or_after {
        let not_on_or_after = instant(text, "NotOnOrAfter")?;
        valid_until = valid_until.min(not_on_or_after + skew);
    }
    if now >= valid_until {
        return Err(reject(
            Reason::Expired,
            format!(
                "the logout message (issued at {issued}) expired at {valid_until}: a logout message is \
                 accepted for identity_provider.request_ttl plus the clock skew, and until its NotOnOrAfter"
            ),
        )
        .into());
    }
    Ok(valid_until)
}

const END_SESSIONS: &str = "
    WITH ended AS (
        UPDATE saml_jit.session s SET ended_at = now(), ended_by = 'idp_logout'
         WHERE s.idp_id = $1 AND s.name_id = $2 AND s.ended_at IS NULL
           AND (cardinality($3::text[]) = 0 OR s.session_index = ANY ($3))
        RETURNING s.id, s.user_id
    )
    SELECT coalesce((SELECT array_agg(id ORDER BY id) FROM ended), '{}'),
           coalesce((SELECT user_id FROM ended LIMIT 1),
                    (SELECT u.id FROM saml_jit.users u WHERE u.idp_id = $1 AND u.name_id = $2 LIMIT 1))";

/// An IdP's LogoutRequest: ends the sessions of its NameID (only those of
/// its SessionIndexes when it names any) and writes the signed reply.
fn end_sessions(
    received: &Received,
    message: &Message,
    config: &Endpoints,
    now: DateTime<Utc>,
) -> Result<Outcome, LoginError> {
    let name_id = message.name_id.clone().unwrap_or_default();
    let (ended, user_id) = Spi::connect_mut(|client| {
        let row = client
            .update(
                END_SESSIONS,
                Some(1),
                &[
                    config.idp_id.into(),
                    name_id.into(),
                    message.session_indexes.clone().into(),
                ],
            )?
            .first();
        Ok::<_, pgrx::spi::SpiError>((
            row.get::<Vec<Uuid>>(1)?.unwrap_or_default(),
            row.get::<Uuid>(2)?,
        ))
    })?;
    let came_by = if received.binding() == "redirect" {
        Binding::Redirect
    } else {
        Binding::Post
    };
    let reply = match (config.endpoint(came_by, true), config.signing_key()) {
        (Some((binding, url)), Some(key)) => {
            let id = new_message_id();
            let issue_instant = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let header = Header {
                id: &id,
                issue_instant: &issue_instant,
                destination: &url,
                issuer: &config.sp_entity_id,
            };
            let xml = logout_response_xml(&header, &message.id, "Success").map_err(|e| {
                reject(
                    Reason::Malformed,
                    format!("cannot write the LogoutResponse: {e}"),
                )
            })?;
            let relay_state = received.relay_state.as_deref();
            Some(
                encode(
                    binding,
                    &url,
                    "SAMLResponse",
                    &xml,
                    &id,
                    relay_state,
                    Some(key),
                )
                .unwrap_or_else(|e| internal(e)),
            )
        }
        (None, _) => {
            pgrx::warning!(
                "saml_jit: the IdP {:?} has no Single Logout endpoint, so no LogoutResponse can be sent; \
                 its sessions were ended",
                config.idp_entity_id
            );
            None
        }
        (_, None) => {
            pgrx::warning!(
                "saml_jit: this SP has no key to sign the LogoutResponse with (saml_jit_set_sp_key); \
                 the sessions were ended but no reply can be sent"
            );
            None
        }
    };
    Ok(Outcome {
        kind: Kind::Request.name(),
        user_id,
        ended_sessions: ended,
        status: "Success".into(),
        reply,
        relay_state: None,
    })
}

const ANSWER: &str = "
    UPDATE saml_jit.logout_request r SET answered_at = now(), status = $3
     WHERE r.request_id = $1 AND r.idp_id = $2 AND r.answered_at IS NULL AND r.expires_at > $4
    RETURNING r.session_id, r.relay_state,
              (SELECT s.user_id FROM saml_jit.session s WHERE s.id = r.session_id)";

const EARLIER_ANSWER: &str = "
    SELECT answered_at::text, expires_at::text FROM saml_jit.logout_request
     WHERE request_id = $1 AND idp_id = $2";

/// The IdP's LogoutResponse: it must answer an outstanding LogoutRequest of
/// ours to this IdP, once. Its status is returned, not raised: the session
/// here ended when the request was made.
fn take_answer(
    message: &Message,
    config: &Endpoints,
    now: DateTime<Utc>,
) -> Result<Outcome, LoginError> {
    let Some(request_id) = &message.in_response_to else {
        return Err(reject(
            Reason::Unsolicited,
            "the LogoutResponse answers no request (no InResponseTo)",
        )
        .into());
    };
    let status = message.status.clone().unwrap_or_default();
    let answered = Spi::connect_mut(|client| {
        let rows = client.update(
            ANSWER,
            Some(1),
            &[
                request_id.as_str().into(),
                config.idp_id.into(),
                status.as_str().into(),
                timestamptz(now).into(),
            ],
        )?;
        if let Some(row) = rows.into_iter().next() {
            return Ok(Ok((
                row.get::<Uuid>(1)?,
                row.get::<String>(2)?,
                row.get::<Uuid>(3)?,
            )));
        }
        let earlier = client.select(
            EARLIER_ANSWER,
            Some(1),
            &[request_id.as_str().into(), config.idp_id.into()],
        )?;
        let why = match earlier.into_iter().next() {
            None => format!(
                "the LogoutResponse answers request {request_id:?}, which this SP never sent to {:?}",
                config.idp_entity_id
            ),
            Some(row) => match row.get::<String>(1)? {
                Some(at) => format!("logout request {request_id:?} was already answered at {at}"),
                None => format!(
                    "logout request {request_id:?} expired at {} (identity_provider.request_ttl)",
                    row.get::<String>(2)?.unwrap_or_default()
                ),
            },
        };
        Ok::<_, pgrx::spi::SpiError>(Err(why))
    })?;
    let (session_id, relay_state, user_id) =
        answered.map_err(|why| reject(Reason::InResponseToMismatch, why))?;
    Ok(Outcome {
        kind: Kind::Response.name(),
        user_id,
        ended_sessions: session_id.into_iter().collect(),
        status,
        reply: None,
        relay_state,
    })
}

/// The session a logout request is made for.
struct Session {
    idp_id: i64,
    name_id: Option<String>,
    name_id_format: Option<String>,
    session_index: Option<String>,
    user_id: Uuid,
    subject: String,
}

const SESSION: &str = "
    SELECT s.idp_id, s.name_id, u.name_id_format, s.session_index, s.user_id, u.subject
      FROM saml_jit.session s JOIN saml_jit.users u ON u.id = s.user_id
     WHERE s.id = $1";

const START: &str = "
    WITH ended AS (
        UPDATE saml_jit.session SET ended_at = now(), ended_by = 'sp_logout'
         WHERE id = $2 AND ended_at IS NULL
        RETURNING id
    )
    INSERT INTO saml_jit.logout_request (request_id, idp_id, session_id, relay_state, expires_at)
    VALUES ($1, $3, $2, $4, $5)
    RETURNING EXISTS (SELECT FROM ended)";

fn unusable(message: String, hint: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        message,
        None,
        Some(hint),
    )
}

/// Starts an SP-initiated Single Logout of one session: the session ends
/// here now, and the signed LogoutRequest goes to the IdP (HTTP-Redirect
/// when the IdP has that endpoint, else HTTP-POST). The IdP's
/// LogoutResponse is then passed to saml_jit_logout.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)]
fn saml_jit_logout_request(
    session_id: Uuid,
    relay_state: default!(Option<&str>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(request_id, String),
        name!(redirect_url, Option<String>),
        name!(post_url, Option<String>),
        name!(saml_request, Option<String>),
    ),
> {
    let session = Spi::connect(|client| {
        let Some(r) = client
            .select(SESSION, Some(1), &[session_id.into()])?
            .next()
        else {
            return Ok(None);
        };
        Ok::<_, pgrx::spi::SpiError>(Some(Session {
            idp_id: r.get(1)?.unwrap_or_default(),
            name_id: r.get(2)?,
            name_id_format: r.get(3)?,
            session_index: r.get(4)?,
            user_id: r.get(5)?.unwrap_or_else(|| Uuid::from_bytes([0; 16])),
            subject: r.get(6)?.unwrap_or_default(),
        }))
    })
    .unwrap_or_else(|e| internal(e.to_string()))
    .unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("unknown session {session_id}"),
            None,
            Some("Pass the session_id that saml_jit_login returned."),
        )
    });
    let config = endpoints(session.idp_id).unwrap_or_else(|e| internal(e.to_string()));
    let Some(name_id) = session.name_id.as_deref() else {
        unusable(
            format!(
                "session {session_id} has no NameID, so the IdP cannot be told whom to log out"
            ),
            "End it with saml_jit_end_session instead.",
        )
    };
    let Some((binding, url)) = config.endpoint(Binding::Redirect, false) else {
        unusable(
            format!("the IdP {:?} has no Single Logout endpoint", config.idp_entity_id),
            "Import its metadata (saml_jit_import_idp_metadata) or set slo_url_redirect / slo_url_post \
             on saml_jit.identity_provider; or end the session with saml_jit_end_session.",
        )
    };
    let Some(key) = config.signing_key() else {
        unusable(
            "a LogoutRequest must be signed and this SP has no key".into(),
            "Install one with saml_jit_set_sp_key.",
        )
    };
    let now = gucs::now().unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            e,
            None,
            None,
        )
    });
    let request_id = new_message_id();
    let issue_instant = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let header = Header {
        id: &request_id,
        issue_instant: &issue_instant,
        destination: &url,
        issuer: &config.sp_entity_id,
    };
    let xml = logout_request_xml(
        &header,
        name_id,
        session.name_id_format.as_deref(),
        session.session_index.as_deref(),
    )
    .unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("saml_jit: cannot build a LogoutRequest: {e}"),
            None,
            None,
        )
    });
    let encoded = encode(
        binding,
        &url,
        "SAMLRequest",
        &xml,
        &request_id,
        relay_state,
        Some(key),
    )
    .unwrap_or_else(|e| internal(e));
    let ended_now = Spi::get_one_with_args::<bool>(
        START,
        &[
            request_id.as_str().into(),
            session_id.into(),
            session.idp_id.into(),
            relay_state.into(),
            timestamptz(now + config.ttl).into(),
        ],
    )
    .unwrap_or_else(|e| internal(e.to_string()));
    store::audit(vec![AuditEntry {
        event: "logout",
        reason: None,
        idp_id: Some(session.idp_id),
        user_id: Some(session.user_id),
        subject: Some(&session.subject),
        assertion_id: Some(&request_id),
        client_addr: None,
        detail: json!({
            "kind": "sp_logout_request",
            "binding": binding.name(),
            "session_id": session_id.to_string(),
            "ended_sessions": if ended_now == Some(true) { vec![session_id.to_string()] } else { vec![] },
            "ended_by": "sp_logout",
        }),
    }])
    .unwrap_or_else(|e| internal(e.to_string()));
    let row = encoded.columns();
    TableIterator::once((request_id, row.0, row.1, row.2))
}
