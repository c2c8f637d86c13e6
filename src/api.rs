//! The SQL boundary: SQL types in, SQL types out, errors turned into ereport
//! with SQLSTATE. No SAML logic here: the login itself is `crate::login`.

use pgrx::prelude::*;
use pgrx::{Inet, Uuid};

use crate::login::{self, LoginError, Request, Seen};
use crate::pg::jsonb::Jsonb;
use crate::pg::{raise, timestamptz};
use crate::provision::rejections::{self, Rejection};
use crate::saml::Reject;

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
        name!(attributes, Jsonb<'static>),
        name!(action, String),
        name!(session_not_on_or_after, Option<TimestampWithTimeZone>),
        name!(email_verified, bool),
        name!(session_id, Uuid),
        name!(relay_state, Option<String>),
    ),
> {
    let client_addr = client_addr.map(|a| a.0);
    let mut seen = Seen::default();
    let request = Request {
        expected: in_response_to,
        client_addr: client_addr.clone(),
    };
    match login::run(response, request, &mut seen) {
        Ok(o) => TableIterator::once((
            o.user_id,
            o.idp_entity_id,
            o.subject,
            o.name_id,
            o.email,
            o.display_name,
            o.groups,
            Jsonb::owned(o.attributes),
            o.action.to_string(),
            o.session_not_on_or_after.map(timestamptz),
            o.email_verified,
            o.session_id,
            o.relay_state,
        )),
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
        Err(LoginError::Nested) => raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "saml_jit_login cannot be called from an on_login hook".into(),
            None,
            Some("A hook provisions the application's own tables for the login that called it."),
        ),
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
