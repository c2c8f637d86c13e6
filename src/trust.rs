//! Trust management: the Rust half. The admin functions themselves are SQL
//! (sql/trust.sql); they lean on `saml_jit_certificate_info`, which refuses a
//! bad certificate with SQLSTATE 22023 and describes a good one.

use pgrx::prelude::*;

use crate::pg::{raise, timestamptz};
use crate::saml::certificate::parse_certificate;

/// Describes a PEM (or bare base64 DER) certificate, or refuses it with a
/// message saying what was pasted instead. Also used by the trigger that fills
/// `saml_jit.idp_certificate`'s derived columns.
#[pg_extern(immutable, parallel_safe)]
#[allow(clippy::type_complexity)]
fn saml_jit_certificate_info(
    certificate: &str,
) -> TableIterator<
    'static,
    (
        name!(pem, String),
        name!(fingerprint_sha256, String),
        name!(subject, String),
        name!(issuer, String),
        name!(serial_number, String),
        name!(key_algorithm, String),
        name!(not_before, TimestampWithTimeZone),
        name!(not_after, TimestampWithTimeZone),
    ),
> {
    let info = match parse_certificate(certificate) {
        Ok(info) => info,
        Err(problem) => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("invalid IdP certificate: {problem}"),
            None,
            Some(
                "Expected the IdP's X.509 signing certificate: a PEM block \
                 (-----BEGIN CERTIFICATE-----) or the base64 text of <ds:X509Certificate> \
                 from the IdP's metadata.",
            ),
        ),
    };
    TableIterator::once((
        info.pem,
        info.fingerprint_sha256,
        info.subject,
        info.issuer,
        info.serial_number,
        info.key_algorithm,
        timestamptz(info.not_before),
        timestamptz(info.not_after),
    ))
}

/// Installs (or replaces) the SP's private key, and optionally its
/// certificate, after checking that they parse and belong together. With
/// `next`, the key pair is stored beside the current one for a rollover:
/// published in the SP metadata and used for decryption at once, made
/// current by saml_jit_promote_sp_key.
#[pg_extern(security_definer, volatile)]
#[search_path(pg_catalog, pg_temp)]
fn saml_jit_set_sp_key(
    sp_entity_id: &str,
    private_key: &str,
    certificate: default!(Option<&str>, "NULL"),
    next: default!(bool, false),
) {
    let invalid = |msg: String| -> ! {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            msg,
            None,
            None,
        )
    };
    let key = openssl::pkey::PKey::private_key_from_pem(private_key.trim().as_bytes())
        .unwrap_or_else(|e| {
            invalid(format!(
                "invalid SP private key: not a PEM private key ({})",
                e.errors()
                    .first()
                    .map(|x| x.to_string())
                    .unwrap_or_default()
            ))
        });
    if crate::saml::decrypt::SpKey::from_pem(private_key.trim()).is_err() {
        invalid("invalid SP private key: libxmlsec1 cannot load it".into());
    }
    let info = certificate.map(|pem| {
        let info = parse_certificate(pem)
            .unwrap_or_else(|e| invalid(format!("invalid SP certificate: {e}")));
        let x509 = openssl::x509::X509::from_der(&info.der)
            .unwrap_or_else(|e| invalid(format!("invalid SP certificate: {e}")));
        let matches = x509
            .public_key()
            .map(|p| p.public_eq(&key))
            .unwrap_or(false);
        if !matches {
            invalid(format!(
                "the SP certificate ({}) does not belong to this private key",
                info.subject
            ));
        }
        info
    });
    let stored = Spi::get_one_with_args::<i64>(
        "INSERT INTO saml_jit.sp_key (sp_id, state, private_key, certificate, fingerprint_sha256, not_after)
         SELECT sp.id, CASE WHEN $6 THEN 'next' ELSE 'current' END, $2, $3, $4, $5
           FROM saml_jit.service_provider sp WHERE sp.entity_id = $1
         ON CONFLICT (sp_id, state) DO UPDATE SET private_key = EXCLUDED.private_key,
                certificate = EXCLUDED.certificate, fingerprint_sha256 = EXCLUDED.fingerprint_sha256,
                not_after = EXCLUDED.not_after, updated_at = now()
         RETURNING sp_id",
        &[
            sp_entity_id.into(),
            private_key.trim().into(),
            info.as_ref().map(|i| i.pem.clone()).into(),
            info.as_ref().map(|i| i.fingerprint_sha256.clone()).into(),
            info.as_ref().map(|i| timestamptz(i.not_after)).into(),
            next.into(),
        ],
    );
    match stored {
        Ok(Some(_)) => {}
        Ok(None) | Err(pgrx::spi::SpiError::InvalidPosition) => raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("unknown service provider {sp_entity_id:?}"),
            None,
            Some("Registered SPs are listed in saml_jit.service_provider; add one with saml_jit_add_sp."),
        ),
        Err(e) => raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("saml_jit: storing the SP key failed: {e}"), None, None),
    }
}

extension_sql_file!(
    "../sql/trust.sql",
    name = "trust",
    requires = [saml_jit_certificate_info]
);

/// The canonical form of an `email_domains` entry (lower case, A-labels, no
/// trailing dot; `*.` kept), or an error saying why it is not a domain. The
/// trigger of `saml_jit.identity_provider` stores every entry through it.
#[pg_extern(immutable, parallel_safe)]
fn saml_jit_email_domain(pattern: &str) -> String {
    crate::provision::entitle::email_domain_pattern(pattern).unwrap_or_else(|why| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("invalid email_domains entry: {why}"),
            None,
            Some("Use a domain such as \"example.com\", or \"*.example.com\" for its subdomains."),
        )
    })
}

extension_sql_file!(
    "../sql/jit.sql",
    name = "jit",
    requires = ["lifecycle", saml_jit_email_domain]
);
