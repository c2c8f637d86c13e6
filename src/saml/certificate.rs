//! IdP signing certificates: parsed and described when an administrator stores
//! one, so that a wrong paste is refused at once instead of at the first login.

use base64::Engine;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use x509_parser::prelude::*;

/// What is stored beside a trusted certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Normalized PEM (one CERTIFICATE block, 64-column base64).
    pub pem: String,
    pub der: Vec<u8>,
    /// Lower-case hex SHA-256 of the DER encoding, colon separated.
    pub fingerprint_sha256: String,
    pub subject: String,
    pub issuer: String,
    pub serial_number: String,
    /// "RSA 2048", "EC P-256", ...
    pub key_algorithm: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

/// Smallest RSA modulus accepted as a trust anchor. 1024-bit keys still sign
/// real IdP traffic (and most peer test fixtures), so they are allowed.
const MIN_RSA_BITS: usize = 1024;

/// Parses a certificate given as PEM, or as the bare base64 DER found in IdP
/// metadata (`<ds:X509Certificate>`). The error text tells a person what they
/// pasted and what is expected instead.
pub fn parse_certificate(input: &str) -> Result<CertificateInfo, String> {
    let text = input.trim();
    if text.is_empty() {
        return Err(
            "the certificate is empty: paste the IdP's X.509 signing certificate \
                    (PEM, or the base64 of <ds:X509Certificate> from its metadata)"
                .into(),
        );
    }
    let der = if text.starts_with("-----BEGIN") {
        der_from_pem(text)?
    } else {
        der_from_bare_base64(text)?
    };
    describe(der)
}

fn der_from_pem(text: &str) -> Result<Vec<u8>, String> {
    let labels: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-----BEGIN "))
        .map(|l| l.trim_end_matches('-'))
        .collect();
    if let Some(label) = labels.iter().find(|l| l.contains("PRIVATE KEY")) {
        return Err(format!(
            "this is a private key ({label}), not a certificate: never store an IdP's private key; \
             use the public signing certificate from the IdP's metadata"
        ));
    }
    match labels.as_slice() {
        ["CERTIFICATE"] => {}
        [] => return Err("no PEM block found".into()),
        [label] if label.contains("PUBLIC KEY") => {
            return Err(format!(
                "this is a bare public key ({label}), not an X.509 certificate: \
                 use the IdP's signing certificate (BEGIN CERTIFICATE)"
            ))
        }
        [label] => return Err(format!("the PEM block is a {label}, not a CERTIFICATE")),
        many => {
            return Err(format!(
                "{} PEM blocks found: store one certificate per call \
                 (saml_jit_add_idp_certificate adds more)",
                many.len()
            ))
        }
    }
    let (_, pem) = x509_parser::pem::parse_x509_pem(text.as_bytes())
        .map_err(|e| format!("the PEM armour is malformed: {e}"))?;
    Ok(pem.contents)
}

fn der_from_bare_base64(text: &str) -> Result<Vec<u8>, String> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| format!("neither PEM (-----BEGIN CERTIFICATE-----) nor base64 DER: {e}"))
}

fn describe(der: Vec<u8>) -> Result<CertificateInfo, String> {
    let (rest, cert) = X509Certificate::from_der(&der)
        .map_err(|e| format!("not a DER-encoded X.509 certificate: {e}"))?;
    if !rest.is_empty() {
        return Err(format!(
            "{} unexpected bytes follow the certificate",
            rest.len()
        ));
    }
    let key_algorithm = key_algorithm(&cert)?;
    let not_before = to_utc(cert.validity().not_before)?;
    let not_after = to_utc(cert.validity().not_after)?;
    let fingerprint_sha256 = Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let info = CertificateInfo {
        pem: to_pem(&der),
        fingerprint_sha256,
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial_number: cert.raw_serial_as_string(),
        key_algorithm,
        not_before,
        not_after,
        der: Vec::new(),
    };
    Ok(CertificateInfo { der, ..info })
}

fn key_algorithm(cert: &X509Certificate<'_>) -> Result<String, String> {
    use x509_parser::public_key::PublicKey;
    match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let bits = rsa.key_size();
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "the certificate's RSA key has {bits} bits; at least {MIN_RSA_BITS} are required"
                ));
            }
            Ok(format!("RSA {bits}"))
        }
        Ok(PublicKey::EC(point)) => {
            let curve = cert
                .public_key()
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| curve_name(&oid.to_id_string()))
                .unwrap_or_else(|| "unknown curve".into());
            Ok(format!("EC {curve} ({} bits)", point.key_size()))
        }
        Ok(_) | Err(_) => Err(format!(
            "unsupported public key algorithm {}: IdP signing keys must be RSA or EC",
            cert.public_key().algorithm.algorithm.to_id_string()
        )),
    }
}

fn curve_name(oid: &str) -> String {
    match oid {
        "1.2.840.10045.3.1.7" => "P-256".into(),
        "1.3.132.0.34" => "P-384".into(),
        "1.3.132.0.35" => "P-521".into(),
        other => other.into(),
    }
}

fn to_utc(time: ASN1Time) -> Result<DateTime<Utc>, String> {
    DateTime::from_timestamp(time.timestamp(), 0)
        .ok_or_else(|| format!("validity date {time} is out of range"))
}

fn to_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::with_capacity(b64.len() + 80);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    // A self-signed RSA-2048 test certificate generated for these tests.
    const TEST_CERT: &str = include_str!("../../pgrx-tests/fixtures/demo-idp.crt");

    #[test]
    fn parses_pem_and_bare_base64_alike() {
        let pem = parse_certificate(TEST_CERT).unwrap();
        assert!(
            pem.key_algorithm.starts_with("RSA 2048"),
            "{}",
            pem.key_algorithm
        );
        assert_eq!(pem.fingerprint_sha256.len(), 32 * 3 - 1);
        let bare: String = TEST_CERT
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let from_bare = parse_certificate(&bare).unwrap();
        assert_eq!(pem, from_bare);
        assert!(pem.not_after > pem.not_before);
        // Normalized PEM round-trips.
        assert_eq!(parse_certificate(&pem.pem).unwrap(), pem);
    }

    #[test]
    fn refuses_a_private_key_and_says_so() {
        let key = include_str!("../../pgrx-tests/fixtures/demo-idp.key");
        let err = parse_certificate(key).unwrap_err();
        assert!(err.contains("private key"), "{err}");
    }

    #[test]
    fn refuses_garbage_and_truncation() {
        assert!(parse_certificate("").unwrap_err().contains("empty"));
        assert!(parse_certificate("hello world!")
            .unwrap_err()
            .contains("neither PEM"));
        let truncated = &TEST_CERT[..TEST_CERT.len() / 2];
        assert!(parse_certificate(truncated).is_err());
        let two = format!("{TEST_CERT}{TEST_CERT}");
        assert!(parse_certificate(&two)
            .unwrap_err()
            .contains("2 PEM blocks"));
        let not_x509 = base64::engine::general_purpose::STANDARD.encode(b"definitely not DER");
        assert!(parse_certificate(&not_x509).unwrap_err().contains("X.509"));
    }
}
