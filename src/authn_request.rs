//! `saml_jit_authn_request`: starts an SP-initiated login. Stores a new
//! request ID for the IdP (answered once, until request_ttl passes, with its
//! RelayState) and returns what the application sends the browser: an
//! HTTP-Redirect URL (signed over the query string), or for an IdP that only
//! has an HTTP-POST endpoint the form's URL and SAMLRequest value (with an
//! enveloped signature) when the IdP wants signed requests.

use pgrx::prelude::*;

use crate::outgoing::{encode, new_message_id, Binding, SigningKey};
use crate::pg::{raise, timestamptz};
use crate::saml::request::{authn_request_xml, AuthnRequest};

/// What the request needs to know about the IdP and this SP.
struct Target {
    idp_id: i64,
    sso_url_redirect: Option<String>,
    sso_url_post: Option<String>,
    sign: bool,
    force_authn: bool,
    requested_authn_context: Vec<String>,
    name_id_policy_format: Option<String>,
    sp_entity_id: String,
    acs_url: String,
    key_pem: Option<String>,
    certificate_pem: Option<String>,
    ttl_micros: i64,
}

const TARGET: &str = "
    SELECT i.id, i.sso_url_redirect, i.sso_url_post, i.sign_authn_requests, i.force_authn,
           coalesce(i.requested_authn_context, '{}'), i.name_id_policy_format,
           sp.entity_id, sp.acs_url, k.private_key, k.certificate,
           (extract(epoch FROM i.request_ttl) * 1000000)::bigint
      FROM saml_jit.identity_provider i
      JOIN saml_jit.service_provider sp ON sp.id = i.sp_id
      LEFT JOIN saml_jit.sp_key k ON k.sp_id = sp.id AND k.state = 'current'
     WHERE i.entity_id = $1";

fn target(idp_entity_id: &str) -> Result<Option<Target>, pgrx::spi::SpiError> {
    Spi::connect(|client| {
        let Some(r) = client
            .select(TARGET, Some(1), &[idp_entity_id.into()])?
            .next()
        else {
            return Ok(None);
        };
        Ok(Some(Target {
            idp_id: r.get(1)?.unwrap_or_default(),
            sso_url_redirect: r.get(2)?,
            sso_url_post: r.get(3)?,
            sign: r.get(4)?.unwrap_or(false),
            force_authn: r.get(5)?.unwrap_or(false),
            requested_authn_context: r.get(6)?.unwrap_or_default(),
            name_id_policy_format: r.get(7)?,
            sp_entity_id: r.get(8)?.unwrap_or_default(),
            acs_url: r.get(9)?.unwrap_or_default(),
            key_pem: r.get(10)?,
            certificate_pem: r.get(11)?,
            ttl_micros: r.get(12)?.unwrap_or(600_000_000),
        }))
    })
}

fn fail(code: PgSqlErrorCode, message: String, hint: Option<&str>) -> ! {
    raise(code, message, None, hint)
}

/// The binding asked for, or the IdP's: HTTP-Redirect when it has that
/// endpoint, else HTTP-POST.
fn choose(asked: Option<&str>, t: &Target, idp: &str) -> (Binding, String) {
    let redirect = || t.sso_url_redirect.clone().map(|u| (Binding::Redirect, u));
    let post = || t.sso_url_post.clone().map(|u| (Binding::Post, u));
    let chosen = match asked {
        None => redirect().or_else(post),
        Some("redirect") => redirect(),
        Some("post") => post(),
        Some(other) => fail(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("binding must be 'redirect' or 'post', not {other:?}"),
            None,
        ),
    };
    chosen.unwrap_or_else(|| {
        let which = match asked {
            Some("post") => "HTTP-POST SSO URL (sso_url_post)",
            Some(_) => "HTTP-Redirect SSO URL (sso_url_redirect)",
            None => "SSO URL (sso_url_redirect or sso_url_post)",
        };
        fail(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("the IdP {idp:?} has no {which}"),
            Some("Import its metadata (saml_jit_import_idp_metadata) or set the URL on saml_jit.identity_provider."),
        )
    })
}

/// Starts an SP-initiated login with the IdP. Without `binding`,
/// HTTP-Redirect is used when the IdP has that endpoint, else HTTP-POST.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)]
fn saml_jit_authn_request(
    idp_entity_id: &str,
    relay_state: default!(Option<&str>, "NULL"),
    binding: default!(Option<&str>, "NULL"),
    force_authn: default!(bool, false),
    is_passive: default!(bool, false),
) -> TableIterator<
    'static,
    (
        name!(request_id, String),
        name!(binding, String),
        name!(redirect_url, Option<String>),
        name!(post_url, Option<String>),
        name!(saml_request, Option<String>),
    ),
> {
    let internal = |e: String| -> ! {
        fail(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("saml_jit: {e}"),
            None,
        )
    };
    let t = target(idp_entity_id)
        .unwrap_or_else(|e| internal(e.to_string()))
        .unwrap_or_else(|| {
            fail(
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                format!("unknown identity provider {idp_entity_id:?}"),
                Some("Trust it with saml_jit_add_idp or saml_jit_import_idp_metadata."),
            )
        });
    let (binding, sso_url) = choose(binding, &t, idp_entity_id);
    if t.sign && t.key_pem.is_none() {
        fail(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("the IdP {idp_entity_id:?} wants signed AuthnRequests but this SP has no key"),
            Some("Install one with saml_jit_set_sp_key, or set sign_authn_requests = false."),
        )
    }
    let key = t
        .key_pem
        .as_deref()
        .filter(|_| t.sign)
        .map(|private_key| SigningKey {
            private_key,
            certificate: t.certificate_pem.as_deref(),
        });
    let request_id = new_message_id();
    let now = crate::gucs::now()
        .unwrap_or_else(|e| fail(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, e, None));
    let xml = authn_request_xml(&AuthnRequest {
        id: &request_id,
        issue_instant: &now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        destination: &sso_url,
        acs_url: &t.acs_url,
        sp_entity_id: &t.sp_entity_id,
        force_authn: force_authn || t.force_authn,
        is_passive,
        name_id_policy_format: t.name_id_policy_format.as_deref(),
        requested_authn_context: &t.requested_authn_context,
    })
    .unwrap_or_else(|e| {
        fail(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("saml_jit: cannot build an AuthnRequest: {e}"),
            None,
        )
    });
    let row = encode(
        binding,
        &sso_url,
        "SAMLRequest",
        &xml,
        &request_id,
        relay_state,
        key,
    )
    .unwrap_or_else(|e| internal(e))
    .columns();
    let expires = now + chrono::Duration::microseconds(t.ttl_micros);
    Spi::run_with_args(
        "INSERT INTO saml_jit.authn_request (request_id, idp_id, relay_state, expires_at) VALUES ($1, $2, $3, $4)",
        &[request_id.as_str().into(), t.idp_id.into(), relay_state.into(), timestamptz(expires).into()],
    )
    .unwrap_or_else(|e| internal(e.to_string()));
    TableIterator::once((request_id, binding.name().to_string(), row.0, row.1, row.2))
}
