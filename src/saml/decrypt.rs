//! EncryptedAssertion: decrypted with the SP's private key (libxmlsec1), then
//! treated like any assertion: it must be signed, or sit in a signed Response
//! whose signature covers the ciphertext. Encryption is not authentication.

use std::ffi::c_int;
use std::ptr;

use xmlsec::bindings as x;

use super::dom::{Document, Node};
use super::shape::{check_shape, Limits};
use super::{reject, Reason, Reject};

const NS_XENC: &str = "http://www.w3.org/2001/04/xmlenc#";

// xmlsec/xmlenc.h is not part of the crate's bindings, and its struct is
// opaque there. The fields saml_jit sets come first in the struct, so only
// this head is mirrored (layout of libxmlsec1 1.2.37's xmlenc.h; the members
// are the crate's own bound types).
#[repr(C)]
struct EncCtxHead {
    user_data: *mut std::ffi::c_void,
    flags: std::ffi::c_uint,
    flags2: std::ffi::c_uint,
    mode: std::ffi::c_int,
    key_info_read_ctx: x::xmlSecKeyInfoCtx,
    key_info_write_ctx: x::xmlSecKeyInfoCtx,
    transform_ctx: x::xmlSecTransformCtx,
}

extern "C" {
    fn xmlSecEncCtxCreate(keys_mngr: x::xmlSecKeysMngrPtr) -> *mut x::xmlSecEncCtx;
    fn xmlSecEncCtxDestroy(ctx: *mut x::xmlSecEncCtx);
    fn xmlSecEncCtxDecryptToBuffer(
        ctx: *mut x::xmlSecEncCtx,
        node: x::xmlNodePtr,
    ) -> x::xmlSecBufferPtr;
}

/// Block ciphers accepted for the assertion itself.
const DATA_ALGORITHMS: &[&str] = &[
    "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes192-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "http://www.w3.org/2009/xmlenc11#aes192-gcm",
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "http://www.w3.org/2001/04/xmlenc#tripledes-cbc",
];

/// Key transport accepted for the session key. RSA PKCS#1 v1.5 is still what
/// several IdPs send; every decryption failure gives the same answer, so the
/// login is no padding oracle beyond its timing.
const KEY_ALGORITHMS: &[&str] = &[
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
    "http://www.w3.org/2009/xmlenc11#rsa-oaep",
    "http://www.w3.org/2001/04/xmlenc#rsa-1_5",
];

/// The SP's private keys, loaded into xmlsec: the current one first, then,
/// during a key rollover, the next one and the previous one, which still
/// decrypt what IdPs encrypted to them.
pub struct SpKey {
    keys: Vec<x::xmlSecKeyPtr>,
}

impl Drop for SpKey {
    fn drop(&mut self) {
        for key in &self.keys {
            // SAFETY: owned keys, each destroyed once.
            unsafe { x::xmlSecKeyDestroy(*key) }
        }
    }
}

impl SpKey {
    /// Every key of `pems` (current first); Err when one cannot be loaded.
    pub fn from_pems(pems: &[String]) -> Result<SpKey, String> {
        let mut ring = SpKey { keys: Vec::new() };
        for pem in pems {
            let mut one = SpKey::from_pem(pem)?;
            ring.keys.append(&mut one.keys);
        }
        Ok(ring)
    }

    pub fn from_pem(pem: &str) -> Result<SpKey, String> {
        super::verify::init().map_err(|r| r.detail)?;
        // SAFETY: xmlsec copies the buffer.
        let key = unsafe {
            x::xmlSecOpenSSLAppKeyLoadMemory(
                pem.as_ptr(),
                pem.len() as u32,
                x::xmlSecKeyDataFormat_xmlSecKeyDataFormatPem,
                ptr::null(),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if key.is_null() {
            return Err("xmlsec could not load the SP private key".into());
        }
        Ok(SpKey { keys: vec![key] })
    }

    /// The current key, for an xmlsec signature context; it stays owned by
    /// `self`.
    pub(crate) fn raw(&self) -> x::xmlSecKeyPtr {
        self.keys[0]
    }
}

/// Checks the algorithms before any decryption is attempted.
fn check_algorithms(encrypted: Node) -> Result<Node, Reject> {
    let data = encrypted.child(NS_XENC, "EncryptedData").ok_or_else(|| {
        reject(
            Reason::Malformed,
            "the EncryptedAssertion has no xenc:EncryptedData",
        )
    })?;
    for node in encrypted.descendants() {
        if !node.is(NS_XENC, "EncryptionMethod") {
            continue;
        }
        let alg = node.attr("Algorithm").unwrap_or_default();
        let parent_is_key = node.parent().is_some_and(|p| p.is(NS_XENC, "EncryptedKey"));
        let allowed = if parent_is_key {
            KEY_ALGORITHMS
        } else {
            DATA_ALGORITHMS
        };
        if !allowed.contains(&alg.as_str()) {
            return Err(reject(
                Reason::AlgorithmForbidden,
                format!("the EncryptedAssertion uses encryption algorithm {alg:?}, which is not accepted"),
            ));
        }
    }
    Ok(data)
}

/// The one answer to every failure to decrypt, whatever failed: the key
/// transport, the padding, the cipher, or the plaintext that came out (not
/// XML, not the element expected). Distinct answers would make the login a
/// decryption oracle (Jager and Somorovsky, CCS 2011).
pub fn failed() -> Reject {
    reject(
        Reason::EncryptedUnsupported,
        "an encrypted element of the response could not be decrypted with this SP's private keys \
         (saml_jit_set_sp_key); check that the IdP encrypts for this SP's current certificate",
    )
}

/// Decrypts the EncryptedData of `encrypted` (an EncryptedAssertion,
/// EncryptedID or EncryptedAttribute of `doc`) and returns the plaintext.
/// Nothing outside the document is ever resolved: structurally, shape.rs
/// already refused CipherReference and any URI but `#id`; here xmlsec is
/// told the same (same-document URIs only, one level of RetrievalMethod and
/// EncryptedKey), so a message can never make the backend open a file or a
/// socket, or block on one.
/// Each of the SP's keys is tried in turn (a rollover keeps two or three);
/// every failure gives the same answer.
pub fn decrypt(doc: &Document, encrypted: Node, sp_key: &SpKey) -> Result<Vec<u8>, Reject> {
    let data = check_algorithms(encrypted)?;
    // Only inside the encrypted element may a RetrievalMethod find its key.
    encrypted.register_ids_named(doc, "Id");
    sp_key
        .keys
        .iter()
        .find_map(|key| decrypt_with(data, *key))
        .ok_or_else(failed)
}

/// The plaintext of the EncryptedData `data` with one key, or None.
fn decrypt_with(data: Node, sp_key: x::xmlSecKeyPtr) -> Option<Vec<u8>> {
    // SAFETY: the manager owns a duplicate of the key; both the manager and
    // the context are destroyed on every path; the result buffer belongs to
    // the context and is copied before it is destroyed.
    unsafe {
        let mngr = x::xmlSecKeysMngrCreate();
        if mngr.is_null() {
            return None;
        }
        let key = x::xmlSecKeyDuplicate(sp_key);
        let ready: c_int = if key.is_null() || x::xmlSecOpenSSLAppDefaultKeysMngrInit(mngr) < 0 {
            -1
        } else {
            x::xmlSecOpenSSLAppDefaultKeysMngrAdoptKey(mngr, key)
        };
        if ready < 0 {
            x::xmlSecKeysMngrDestroy(mngr);
            return None;
        }
        let ctx = xmlSecEncCtxCreate(mngr);
        let plaintext = if ctx.is_null() || !confine(ctx, mngr) {
            if !ctx.is_null() {
                xmlSecEncCtxDestroy(ctx);
            }
            None
        } else {
            let buf = xmlSecEncCtxDecryptToBuffer(ctx, data.ptr);
            let out = (!buf.is_null()).then(|| {
                let size = x::xmlSecBufferGetSize(buf) as usize;
                std::slice::from_raw_parts(x::xmlSecBufferGetData(buf), size).to_vec()
            });
            xmlSecEncCtxDestroy(ctx);
            out
        };
        x::xmlSecKeysMngrDestroy(mngr);
        plaintext.filter(|p| !p.is_empty())
    }
}

/// Same-document URIs only for the ciphertext and for key retrieval, and no
/// chains of RetrievalMethod or EncryptedKey.
/// False (fail closed) when the mirrored layout does not match the library's:
/// the keys manager xmlsec stored in the read context must be ours.
unsafe fn confine(ctx: *mut x::xmlSecEncCtx, mngr: x::xmlSecKeysMngrPtr) -> bool {
    let head = ctx as *mut EncCtxHead;
    if (*head).key_info_read_ctx.keysMngr != mngr || (*head).key_info_write_ctx.keysMngr != mngr {
        return false;
    }
    let same_document = x::xmlSecTransformUriTypeSameDocument as x::xmlSecTransformUriType;
    (*head).transform_ctx.enabledUris = same_document;
    (*head).key_info_read_ctx.retrievalMethodCtx.enabledUris = same_document;
    (*head).key_info_read_ctx.maxRetrievalMethodLevel = 1;
    (*head).key_info_read_ctx.maxEncryptedKeyLevel = 1;
    true
}

/// The plaintext of `encrypted`, checked and parsed as a standalone document
/// whose root wraps what was decrypted; any failure is `failed()`.
pub fn open(
    doc: &Document,
    encrypted: Node,
    sp_key: &SpKey,
    namespaces: &[(String, String)],
) -> Result<(Vec<u8>, Document), Reject> {
    let plaintext = decrypt(doc, encrypted, sp_key)?;
    let standalone = standalone(&plaintext, namespaces);
    check_shape(&standalone, &Limits::RESPONSE).map_err(|_| failed())?;
    let parsed = Document::parse(&standalone).map_err(|_| failed())?;
    Ok((standalone, parsed))
}

/// The plaintext as a standalone document: wrapped in an element that
/// re-declares the namespaces in scope where the EncryptedAssertion stood, so
/// prefixes the plaintext inherits still resolve.
pub fn standalone(plaintext: &[u8], namespaces: &[(String, String)]) -> Vec<u8> {
    let escape = |v: &str| {
        v.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('"', "&quot;")
    };
    let mut out = b"<saml_jit_decrypted".to_vec();
    for (prefix, uri) in namespaces {
        let decl = if prefix.is_empty() {
            format!(" xmlns=\"{}\"", escape(uri))
        } else {
            format!(" xmlns:{prefix}=\"{}\"", escape(uri))
        };
        out.extend_from_slice(decl.as_bytes());
    }
    out.push(b'>');
    out.extend_from_slice(plaintext);
    out.extend_from_slice(b"</saml_jit_decrypted>");
    out
}
