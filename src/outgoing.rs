//! Messages this SP sends (AuthnRequest, LogoutRequest, LogoutResponse): a
//! fresh message ID, and the front-channel binding that carries the XML to
//! the IdP, signed with the SP's current key when a key is given: the
//! HTTP-Redirect binding signs the query octets, HTTP-POST gets an enveloped
//! XML signature.

use pgrx::prelude::*;

use crate::pg::raise;
use crate::saml::decrypt::SpKey;
use crate::saml::request::{redirect_url, QuerySigner};
use crate::saml::sign::sign_enveloped;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Binding {
    Redirect,
    Post,
}

impl Binding {
    pub fn name(self) -> &'static str {
        match self {
            Binding::Redirect => "redirect",
            Binding::Post => "post",
        }
    }
}

/// A message ready for the browser: the URL to redirect to, or the form's
/// URL and its base64 value.
pub enum Encoded {
    Redirect(String),
    Post { url: String, value: String },
}

impl Encoded {
    /// The columns the SQL functions return: the URL to redirect to, or the
    /// form's URL and its value.
    pub fn columns(self) -> (Option<String>, Option<String>, Option<String>) {
        match self {
            Encoded::Redirect(url) => (Some(url), None, None),
            Encoded::Post { url, value } => (None, Some(url), Some(value)),
        }
    }
}

/// The SP's current key pair (PEM), for signing.
pub struct SigningKey<'a> {
    pub private_key: &'a str,
    pub certificate: Option<&'a str>,
}

/// A fresh message ID: `_` and 32 hex digits from the server's strong source.
pub fn new_message_id() -> String {
    let mut random = [0u8; 16];
    // SAFETY: fills the buffer from the server's strong random source.
    if !unsafe { pg_sys::pg_strong_random(random.as_mut_ptr().cast(), random.len()) } {
        raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "saml_jit: no strong random source".into(),
            None,
            None,
        );
    }
    format!(
        "_{}",
        random
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// The certificate's DER in base64 (the PEM body), for KeyInfo.
fn certificate_b64(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

/// Puts `xml` (whose root has ID `id`) into `binding` towards `url` as
/// `parameter` (SAMLRequest or SAMLResponse), signed when `key` is given.
pub fn encode(
    binding: Binding,
    url: &str,
    parameter: &str,
    xml: &str,
    id: &str,
    relay_state: Option<&str>,
    key: Option<SigningKey<'_>>,
) -> Result<Encoded, String> {
    match binding {
        Binding::Redirect => {
            let signer = key
                .map(|k| openssl::pkey::PKey::private_key_from_pem(k.private_key.as_bytes()))
                .transpose()
                .map_err(|e| format!("the stored SP key: {e}"))?;
            let sign_with = signer.map(|key| {
                move |data: &[u8]| -> Result<Vec<u8>, String> {
                    let mut s =
                        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key)
                            .map_err(|e| e.to_string())?;
                    s.update(data).map_err(|e| e.to_string())?;
                    s.sign_to_vec().map_err(|e| e.to_string())
                }
            });
            let signer = sign_with.as_ref().map(|f| f as QuerySigner<'_>);
            redirect_url(url, parameter, xml, relay_state, signer).map(Encoded::Redirect)
        }
        Binding::Post => {
            let message = match key {
                None => xml.to_string(),
                Some(k) => {
                    let sp_key = SpKey::from_pem(k.private_key)?;
                    let certificate = k.certificate.map(certificate_b64);
                    sign_enveloped(xml, id, &sp_key, certificate.as_deref())?
                }
            };
            Ok(Encoded::Post {
                url: url.to_string(),
                value: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, message),
            })
        }
    }
}
