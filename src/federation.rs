//! Federation helpers at the SQL boundary: reading IdP metadata, writing the
//! SP's metadata. The import itself (writes) is SQL: sql/metadata.sql.

use pgrx::prelude::*;

use crate::pg::{raise, timestamptz};
use crate::saml::metadata::{parse_idp_metadata, sp_metadata, SpMetadata};

/// What an IdP's metadata says (nothing is stored): entity ID, signing
/// certificates (base64 DER), SSO endpoints, NameID formats, validUntil,
/// cacheDuration, Single Logout endpoints.
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
        name!(cache_duration, Option<pgrx::datum::Interval>),
        name!(slo_url_redirect, Option<String>),
        name!(slo_url_post, Option<String>),
        name!(slo_response_url_redirect, Option<String>),
        name!(slo_response_url_post, Option<String>),
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
        m.cache_duration
            .map(|d| pgrx::datum::Interval::from_micros(d.num_microseconds().unwrap_or(i64::MAX))),
        m.slo_redirect.clone().map(|(location, _)| location),
        m.slo_post.clone().map(|(location, _)| location),
        m.slo_redirect.and_then(|(_, response)| response),
        m.slo_post.and_then(|(_, response)| response),
    ))
}

/// This SP's metadata as text (saml_jit_sp_metadata returns it as xml).
#[pg_extern(stable, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn saml_jit_sp_metadata_text(sp_entity_id: default!(Option<&str>, "NULL")) -> String {
    let row = Spi::connect(|client| {
        let table = client.select(
            "SELECT sp.entity_id, sp.acs_url, sp.slo_url,
                    (SELECT coalesce(array_agg(k.certificate ORDER BY k.state = 'current' DESC), '{}')
                       FROM saml_jit.sp_key k
                      WHERE k.sp_id = sp.id AND k.state IN ('current', 'next') AND k.certificate IS NOT NULL),
                    count(*) OVER ()
               FROM saml_jit.service_provider sp
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
                r.get::<Vec<String>>(4)?.unwrap_or_default(),
                r.get::<i64>(5)?.unwrap_or(0),
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
    let (entity_id, acs_url, slo_url, certificates) = match row.as_slice() {
        [(e, a, s, c, 1)] => (e.clone(), a.clone(), s.clone(), c.clone()),
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
    let certificates: Vec<String> = certificates
        .iter()
        .map(|pem| {
            pem.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>()
        })
        .collect();
    sp_metadata(&SpMetadata {
        entity_id: &entity_id,
        acs_url: &acs_url,
        slo_url: slo_url.as_deref(),
        certificates: &certificates,
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
