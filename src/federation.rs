//! Federation helpers at the SQL boundary: reading IdP metadata, writing the
//! SP's metadata. The import itself (writes) is SQL: sql/metadata.sql.

use pgrx::prelude::*;

use crate::pg::{raise, timestamptz};
use crate::saml::metadata::{parse_idp_metadata, sp_metadata, SpMetadata};
use crate::saml::request::{authn_request_xml, redirect_url, AuthnRequest, QuerySigner};

/// What an IdP's metadata says (nothing is stored): entity ID, signing
/// certificates (base64 DER), SSO endpoints, NameID formats, validUntil.
#[pg_extern(immutable, parallel_safe)]
#[allow(clippy::type_complexity)]
fn saml_jit_parse_idp_metadata(
    metadata: &str,
    entity_id: default!(Option<&str>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(entity_id, String),
        name!(certificates, Vec<String>),
        name!(sso_url_redirect, Option<String>),
        name!(sso_url_post, Option<String>),
        name!(name_id_formats, Vec<String>),
        name!(valid_until, Option<TimestampWithTimeZone>),
        name!(want_authn_requests_signed, bool),
    ),
> {
    let m = parse_idp_metadata(metadata, entity_id).unwrap_or_else(|problem| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("invalid IdP metadata: {problem}"),
            None,
            Some("Pass the IdP's SAML 2.0 metadata XML (an EntityDescriptor, or an EntitiesDescriptor and entity_id)."),
        )
    });
    TableIterator::once((
        m.entity_id,
        m.signing_certificates,
        m.sso_redirect,
        m.sso_post,
        m.name_id_formats,
        m.valid_until.map(timestamptz),
        m.want_authn_requests_signed,
    ))
}

/// This SP's metadata as text (saml_jit_sp_metadata returns it as xml).
#[pg_extern(stable, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn saml_jit_sp_metadata_text(sp_entity_id: default!(Option<&str>, "NULL")) -> String {
    let row = Spi::connect(|client| {
        let table = client.select(
            "SELECT sp.entity_id, sp.acs_url, k.certificate, count(*) OVER ()
               FROM saml_jit.service_provider sp LEFT JOIN saml_jit.sp_key k ON k.sp_id = sp.id
              WHERE $1::text IS NULL OR sp.entity_id = $1",
            Some(2),
            &[sp_entity_id.into()],
        )?;
        let mut rows = Vec::new();
        for r in table {
            rows.push((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<String>(2)?.unwrap_or_default(),
                r.get::<String>(3)?,
                r.get::<i64>(4)?.unwrap_or(0),
            ));
        }
        Ok::<_, pgrx::spi::SpiError>(rows)
    })
    .unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("saml_jit: {e}"),
            None,
            None,
        )
    });
    let (entity_id, acs_url, certificate) = match row.as_slice() {
        [(e, a, c, 1)] => (e.clone(), a.clone(), c.clone()),
        [] => raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!(
                "unknown service provider {:?}",
                sp_entity_id.unwrap_or("(none registered)")
            ),
            None,
            Some("Register this application with saml_jit_add_sp(entity_id, acs_url)."),
        ),
        _ => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "several service providers are registered: say which one".into(),
            None,
            Some("Pass sp_entity_id => '...'."),
        ),
    };
    let cert_b64 = certificate.map(|pem| {
        pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
    });
    sp_metadata(&SpMetadata {
        entity_id: &entity_id,
        acs_url: &acs_url,
        certificate: cert_b64.as_deref(),
    })
}

extension_sql_file!(
    "../sql/metadata.sql",
    name = "metadata",
    requires = [
        "trust",
        saml_jit_parse_idp_metadata,
        saml_jit_sp_metadata_text
    ]
);

/// Starts an SP-initiated login: stores a new request ID for the IdP (answered
/// once, until request_ttl passes) and returns the HTTP-Redirect URL to send
/// the browser to, signed with the SP key when the IdP wants signed requests.
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn saml_jit_authn_request(
    idp_entity_id: &str,
    relay_state: default!(Option<&str>, "NULL"),
) -> TableIterator<'static, (name!(request_id, String), name!(redirect_url, String))> {
    let fail = |code, msg: String, hint: Option<&str>| -> ! { raise(code, msg, None, hint) };
    let row = Spi::connect(|client| {
        let t = client.select(
            "SELECT i.id, i.sso_url_redirect, i.sign_authn_requests, sp.entity_id, sp.acs_url, k.private_key,
                    (extract(epoch FROM i.request_ttl) * 1000000)::bigint
               FROM saml_jit.identity_provider i
               JOIN saml_jit.service_provider sp ON sp.id = i.sp_id
               LEFT JOIN saml_jit.sp_key k ON k.sp_id = sp.id
              WHERE i.entity_id = $1",
            Some(1),
            &[idp_entity_id.into()],
        )?;
        let mut out = None;
        for r in t {
            out = Some((
                r.get::<i64>(1)?.unwrap_or_default(),
                r.get::<String>(2)?,
                r.get::<bool>(3)?.unwrap_or(false),
                r.get::<String>(4)?.unwrap_or_default(),
                r.get::<String>(5)?.unwrap_or_default(),
                r.get::<String>(6)?,
                r.get::<i64>(7)?.unwrap_or(600_000_000),
            ));
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .unwrap_or_else(|e| fail(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("saml_jit: {e}"), None));
    let Some((idp_id, sso_url, sign, sp_entity_id, acs_url, key_pem, ttl_micros)) = row else {
        fail(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("unknown identity provider {idp_entity_id:?}"),
            Some("Trust it with saml_jit_add_idp or saml_jit_import_idp_metadata."),
        )
    };
    let Some(sso_url) = sso_url else {
        fail(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("the IdP {idp_entity_id:?} has no HTTP-Redirect SSO URL"),
            Some("Import its metadata (saml_jit_import_idp_metadata) or set saml_jit.identity_provider.sso_url_redirect."),
        )
    };
    let signer = if sign {
        let pem = key_pem.unwrap_or_else(|| {
            fail(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!(
                    "the IdP {idp_entity_id:?} wants signed AuthnRequests but this SP has no key"
                ),
                Some("Install one with saml_jit_set_sp_key, or set sign_authn_requests = false."),
            )
        });
        Some(
            openssl::pkey::PKey::private_key_from_pem(pem.as_bytes()).unwrap_or_else(|e| {
                fail(
                    PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                    format!("saml_jit: the stored SP key: {e}"),
                    None,
                )
            }),
        )
    } else {
        None
    };
    let mut random = [0u8; 16];
    // SAFETY: fills the buffer from the server's strong random source.
    if !unsafe { pg_sys::pg_strong_random(random.as_mut_ptr().cast(), random.len()) } {
        fail(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "saml_jit: no strong random source".into(),
            None,
        );
    }
    let request_id = format!(
        "_{}",
        random
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let now = crate::gucs::now()
        .unwrap_or_else(|e| fail(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, e, None));
    let xml = authn_request_xml(&AuthnRequest {
        id: &request_id,
        issue_instant: &now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        destination: &sso_url,
        acs_url: &acs_url,
        sp_entity_id: &sp_entity_id,
    })
    .unwrap_or_else(|e| {
        fail(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("saml_jit: cannot build an AuthnRequest: {e}"),
            None,
        )
    });
    let sign_with = signer.map(|key| {
        move |data: &[u8]| -> Result<Vec<u8>, String> {
            let mut s = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key)
                .map_err(|e| e.to_string())?;
            s.update(data).map_err(|e| e.to_string())?;
            s.sign_to_vec().map_err(|e| e.to_string())
        }
    });
    let url = redirect_url(
        &sso_url,
        &xml,
        relay_state,
        sign_with.as_ref().map(|f| f as QuerySigner<'_>),
    )
    .unwrap_or_else(|e| {
        fail(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("saml_jit: {e}"),
            None,
        )
    });
    let expires = now + chrono::Duration::microseconds(ttl_micros);
    Spi::run_with_args(
        "INSERT INTO saml_jit.authn_request (request_id, idp_id, relay_state, expires_at) VALUES ($1, $2, $3, $4)",
        &[request_id.as_str().into(), idp_id.into(), relay_state.into(), timestamptz(expires).into()],
    )
    .unwrap_or_else(|e| fail(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("saml_jit: {e}"), None));
    TableIterator::once((request_id, url))
}
