//! Trust management: the Rust half. The admin functions themselves are SQL
//! (sql/trust.sql); they lean on `saml_jit_certificate_info`, which refuses a
//! bad certificate with SQLSTATE 22023 and describes a good one.

use pgrx::prelude::*;

use crate::api::{raise, timestamptz};
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

extension_sql_file!(
    "../sql/trust.sql",
    name = "trust",
    requires = [saml_jit_certificate_info]
);

extension_sql_file!(
    "../sql/lifecycle.sql",
    name = "lifecycle",
    requires = ["trust"]
);
