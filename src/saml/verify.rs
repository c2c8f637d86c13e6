//! Step 3: XML-DSig verification with libxmlsec1 against trusted keys only,
//! returning the exact bytes each verified Reference digested. Before xmlsec
//! runs, the Signature's shape is checked so that every refusal names its
//! cause (one Reference, pointing at its own parent, known transforms and
//! algorithms); xmlsec then enforces the same limits again.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr};
use std::ptr;
use std::rc::Rc;
use std::sync::Once;

use xmlsec::bindings as x;

use super::dom::{Document, Node, NS_DSIG};
use super::text::is_ncname;
use super::{reject, Reason, Reject};

// xmlsec/errors.h is not part of the crate's bindings.
type ErrorsCallback = unsafe extern "C" fn(
    file: *const c_char,
    line: c_int,
    func: *const c_char,
    error_object: *const c_char,
    error_subject: *const c_char,
    reason: c_int,
    msg: *const c_char,
);
extern "C" {
    fn xmlSecErrorsSetCallback(callback: Option<ErrorsCallback>);
}

thread_local! {
    /// The last error xmlsec reported during the current verification.
    static LAST_XMLSEC_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

unsafe extern "C" fn collect_error(
    _file: *const c_char,
    _line: c_int,
    func: *const c_char,
    _object: *const c_char,
    subject: *const c_char,
    _reason: c_int,
    msg: *const c_char,
) {
    let text = |p: *const c_char| {
        // SAFETY: xmlsec passes NULL or NUL-terminated strings.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    };
    let parts: Vec<String> = [text(func), text(subject), text(msg)]
        .into_iter()
        .flatten()
        .collect();
    LAST_XMLSEC_ERROR.with(|e| *e.borrow_mut() = Some(parts.join(": ")));
}

static INIT: Once = Once::new();
static mut INIT_OK: bool = false;

/// Initializes libxmlsec1 once per backend process. Errors are collected for
/// DETAIL messages instead of being printed to the server log.
pub fn init() -> Result<(), Reject> {
    INIT.call_once(|| {
        // SAFETY: one-time global initialization, single-threaded backend.
        unsafe {
            INIT_OK = x::xmlSecInit() >= 0
                && x::xmlSecOpenSSLAppInit(ptr::null()) >= 0
                && x::xmlSecOpenSSLInit() >= 0;
            // After the inits: xmlSecInit installs the default (stderr) callback.
            xmlSecErrorsSetCallback(Some(collect_error));
        }
    });
    // SAFETY: written once inside call_once above, read-only afterwards.
    if unsafe { INIT_OK } {
        Ok(())
    } else {
        Err(reject(
            Reason::SignatureInvalid,
            "libxmlsec1 failed to initialize",
        ))
    }
}

/// A trusted certificate's public key, loaded into xmlsec.
pub struct TrustedKey {
    pub certificate_id: i64,
    key: x::xmlSecKeyPtr,
    /// The same public key for OpenSSL: the HTTP-Redirect binding's detached
    /// signature over the query string is not XML-DSig (logout.rs).
    pub public_key: Option<openssl::pkey::PKey<openssl::pkey::Public>>,
}

impl Drop for TrustedKey {
    fn drop(&mut self) {
        // SAFETY: key was created by xmlSecOpenSSLAppKeyLoadMemory and is owned here.
        unsafe { x::xmlSecKeyDestroy(self.key) }
    }
}

impl TrustedKey {
    /// Loads the public key of a DER certificate.
    pub fn from_certificate_der(certificate_id: i64, der: &[u8]) -> Result<TrustedKey, String> {
        init().map_err(|r| r.detail)?;
        // SAFETY: xmlsec copies the buffer.
        let key = unsafe {
            x::xmlSecOpenSSLAppKeyLoadMemory(
                der.as_ptr(),
                der.len() as u32,
                x::xmlSecKeyDataFormat_xmlSecKeyDataFormatCertDer,
                ptr::null(),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if key.is_null() {
            return Err(format!(
                "certificate {certificate_id}: xmlsec could not load its public key"
            ));
        }
        let public_key = openssl::x509::X509::from_der(der)
            .and_then(|c| c.public_key())
            .ok();
        Ok(TrustedKey {
            certificate_id,
            key,
            public_key,
        })
    }
}

/// What a verified signature vouches for.
#[derive(Debug)]
pub struct VerifiedSignature {
    /// The canonical bytes the Reference digested: the signed element with its
    /// enveloped Signature removed.
    pub signed_bytes: Vec<u8>,
    pub certificate_id: i64,
    pub signature_algorithm: &'static str,
    pub digest_algorithm: &'static str,
}

/// A signature or digest algorithm saml_jit knows.
struct Algorithm {
    uri: &'static str,
    name: &'static str,
    sha1: bool,
}

const SIGNATURE_ALGORITHMS: &[Algorithm] = &[
    Algorithm {
        uri: "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        name: "RSA-SHA256",
        sha1: false,
    },
    Algorithm {
        uri: "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
        name: "RSA-SHA384",
        sha1: false,
    },
    Algorithm {
        uri: "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
        name: "RSA-SHA512",
        sha1: false,
    },
    Algorithm {
        uri: "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
        name: "ECDSA-SHA256",
        sha1: false,
    },
    Algorithm {
        uri: "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
        name: "ECDSA-SHA384",
        sha1: false,
    },
    Algorithm {
        uri: "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
        name: "ECDSA-SHA512",
        sha1: false,
    },
    Algorithm {
        uri: "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        name: "RSA-SHA1",
        sha1: true,
    },
    Algorithm {
        uri: "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
        name: "ECDSA-SHA1",
        sha1: true,
    },
];

const DIGEST_ALGORITHMS: &[Algorithm] = &[
    Algorithm {
        uri: "http://www.w3.org/2001/04/xmlenc#sha256",
        name: "SHA-256",
        sha1: false,
    },
    Algorithm {
        uri: "http://www.w3.org/2001/04/xmldsig-more#sha384",
        name: "SHA-384",
        sha1: false,
    },
    Algorithm {
        uri: "http://www.w3.org/2001/04/xmlenc#sha512",
        name: "SHA-512",
        sha1: false,
    },
    Algorithm {
        uri: "http://www.w3.org/2000/09/xmldsig#sha1",
        name: "SHA-1",
        sha1: true,
    },
];

const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const CANONICALIZATIONS: &[&str] = &[
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
    "http://www.w3.org/2006/12/xml-c14n11",
    "http://www.w3.org/2006/12/xml-c14n11#WithComments",
];

fn algorithm<'a>(
    table: &'a [Algorithm],
    uri: Option<String>,
    what: &str,
    allow_sha1: bool,
) -> Result<&'a Algorithm, Reject> {
    let uri = uri.unwrap_or_default();
    let found = table.iter().find(|a| a.uri == uri).ok_or_else(|| {
        reject(
            Reason::AlgorithmForbidden,
            format!(
                "{what} {uri:?} is not supported (accepted: {})",
                names(table)
            ),
        )
    })?;
    if found.sha1 && !allow_sha1 {
        return Err(reject(
            Reason::AlgorithmForbidden,
            format!(
                "the {what} is {} and SHA-1 is not allowed for this IdP; ask the IdP to sign with \
                 SHA-256, or (weaker) set saml_jit.identity_provider.allow_sha1 = true",
                found.name
            ),
        ));
    }
    Ok(found)
}

fn names(table: &[Algorithm]) -> String {
    table.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
}

/// The checked shape of one ds:Signature.
struct SignatureShape {
    signature_algorithm: &'static str,
    digest_algorithm: &'static str,
}

/// Checks the Signature that is a direct child of `parent` before any crypto:
/// exactly one Reference, whose URI is `#` + the parent's ID, with only the
/// enveloped and canonicalization transforms, and known algorithms.
fn check_shape(parent: Node, signature: Node, allow_sha1: bool) -> Result<SignatureShape, Reject> {
    let what = parent.local_name();
    let bad = |msg: String| {
        reject(
            Reason::ReferenceInvalid,
            format!("the {what} signature {msg}"),
        )
    };
    let signed_info = signature
        .children_named(NS_DSIG, "SignedInfo")
        .into_iter()
        .next()
        .ok_or_else(|| {
            reject(
                Reason::Malformed,
                format!("the {what} signature has no SignedInfo"),
            )
        })?;
    if signature.child(NS_DSIG, "Object").is_some() {
        return Err(bad(
            "carries a ds:Object, which SAML signatures never need".into()
        ));
    }
    let c14n = signed_info
        .child(NS_DSIG, "CanonicalizationMethod")
        .and_then(|n| n.attr("Algorithm"))
        .unwrap_or_default();
    if !CANONICALIZATIONS.contains(&c14n.as_str()) {
        return Err(reject(
            Reason::AlgorithmForbidden,
            format!("the {what} signature uses canonicalization {c14n:?}, which is not accepted"),
        ));
    }
    let signature_algorithm = algorithm(
        SIGNATURE_ALGORITHMS,
        signed_info
            .child(NS_DSIG, "SignatureMethod")
            .and_then(|n| n.attr("Algorithm")),
        "signature algorithm",
        allow_sha1,
    )?;
    let references = signed_info.children_named(NS_DSIG, "Reference");
    let [reference] = references.as_slice() else {
        return Err(bad(format!(
            "has {} References; exactly one is accepted",
            references.len()
        )));
    };
    let id = parent.attr("ID").unwrap_or_default();
    let uri = reference.attr("URI").unwrap_or_default();
    if !is_ncname(&id) || uri != format!("#{id}") {
        return Err(bad(format!(
            "references {uri:?}, but it must reference its own {what} (\"#{id}\")"
        )));
    }
    if let Some(transforms) = reference.child(NS_DSIG, "Transforms") {
        for t in transforms.children() {
            let alg = t.attr("Algorithm").unwrap_or_default();
            if !t.is(NS_DSIG, "Transform")
                || (alg != ENVELOPED && !CANONICALIZATIONS.contains(&alg.as_str()))
            {
                return Err(bad(format!(
                    "uses transform {alg:?}; only enveloped-signature and canonicalization are accepted"
                )));
            }
        }
    }
    let digest_algorithm = algorithm(
        DIGEST_ALGORITHMS,
        reference
            .child(NS_DSIG, "DigestMethod")
            .and_then(|n| n.attr("Algorithm")),
        "digest algorithm",
        allow_sha1,
    )?;
    Ok(SignatureShape {
        signature_algorithm: signature_algorithm.name,
        digest_algorithm: digest_algorithm.name,
    })
}

/// Verifies the ds:Signature `signature`, a direct child of `parent`, with
/// every trusted key until one verifies. Never trusts KeyInfo.
pub fn verify_signature(
    doc: &Document,
    parent: Node,
    signature: Node,
    keys: &[Rc<TrustedKey>],
    allow_sha1: bool,
) -> Result<VerifiedSignature, Reject> {
    let shape = check_shape(parent, signature, allow_sha1)?;
    init()?;
    if keys.is_empty() {
        return Err(reject(
            Reason::SignatureInvalid,
            "this IdP has no usable signing certificate in saml_jit.idp_certificate: none is active, \
             or every active one has expired and identity_provider.reject_expired_certificates is on",
        ));
    }
    let mut failures = Vec::new();
    for key in keys {
        match verify_with_key(signature, key)? {
            Ok(signed_bytes) => {
                let _ = doc;
                return Ok(VerifiedSignature {
                    signed_bytes,
                    certificate_id: key.certificate_id,
                    signature_algorithm: shape.signature_algorithm,
                    digest_algorithm: shape.digest_algorithm,
                });
            }
            Err(failure) => {
                failures.push(format!(
                    "certificate {}: {}",
                    key.certificate_id, failure.why
                ));
                // xmlsec digests the referenced element before it checks the
                // SignatureValue, and the digest does not depend on the key:
                // after a digest mismatch no other key can succeed, so the
                // (possibly large) element is canonicalized once, not once
                // per active certificate.
                if failure.digest_mismatch {
                    break;
                }
            }
        }
    }
    Err(reject(
        Reason::SignatureInvalid,
        format!(
            "the {} signature does not verify with any of the IdP's {} active certificate(s) ({})",
            parent.local_name(),
            keys.len(),
            failures.join("; ")
        ),
    ))
}

/// Why one key did not verify a signature.
struct Failure {
    why: String,
    /// The referenced element's digest did not match: no key can verify.
    digest_mismatch: bool,
}

/// One attempt: Ok(Ok(bytes)) verified, Ok(Err(failure)) did not verify with this key.
fn verify_with_key(signature: Node, key: &TrustedKey) -> Result<Result<Vec<u8>, Failure>, Reject> {
    LAST_XMLSEC_ERROR.with(|e| e.borrow_mut().take());
    // SAFETY: the context is destroyed on every path; signKey is detached
    // before destruction because the key belongs to `key`.
    unsafe {
        let ctx = x::xmlSecDSigCtxCreate(ptr::null_mut());
        if ctx.is_null() {
            return Err(reject(
                Reason::SignatureInvalid,
                "xmlsec could not allocate a context",
            ));
        }
        let outcome = (|| {
            restrict(ctx)?;
            (*ctx).flags |= x::XMLSEC_DSIG_FLAGS_STORE_SIGNEDINFO_REFERENCES;
            (*ctx).signKey = key.key;
            let rc = x::xmlSecDSigCtxVerify(ctx, signature.ptr);
            (*ctx).signKey = ptr::null_mut();
            if rc < 0 {
                let why = LAST_XMLSEC_ERROR
                    .with(|e| e.borrow_mut().take())
                    .unwrap_or_else(|| "xmlsec could not process the signature".into());
                // An error can be this key's (an EC key for an RSA signature,
                // as during a rollover between algorithms): the next key is
                // tried unless a digest already failed.
                return Ok(Err(Failure {
                    why,
                    digest_mismatch: reference_failed(ctx),
                }));
            }
            if (*ctx).status != x::xmlSecDSigStatus_xmlSecDSigStatusSucceeded {
                let digest_mismatch = reference_failed(ctx);
                let why = if digest_mismatch {
                    "the digest of the signed element does not match (it was changed after signing)"
                } else {
                    "the signature value does not match this certificate's key"
                };
                return Ok(Err(Failure {
                    why: why.into(),
                    digest_mismatch,
                }));
            }
            Ok(Ok(signed_reference_bytes(ctx)?))
        })();
        x::xmlSecDSigCtxDestroy(ctx);
        outcome
    }
}

/// Same-document references only, and only the transforms SAML uses.
unsafe fn restrict(ctx: x::xmlSecDSigCtxPtr) -> Result<(), Reject> {
    (*ctx).enabledReferenceUris = x::xmlSecTransformUriTypeSameDocument as _;
    let reference: [x::xmlSecTransformId; 11] = [
        x::xmlSecTransformEnvelopedGetKlass(),
        x::xmlSecTransformExclC14NGetKlass(),
        x::xmlSecTransformExclC14NWithCommentsGetKlass(),
        x::xmlSecTransformInclC14NGetKlass(),
        x::xmlSecTransformInclC14NWithCommentsGetKlass(),
        x::xmlSecTransformInclC14N11GetKlass(),
        x::xmlSecTransformInclC14N11WithCommentsGetKlass(),
        x::xmlSecOpenSSLTransformSha1GetKlass(),
        x::xmlSecOpenSSLTransformSha256GetKlass(),
        x::xmlSecOpenSSLTransformSha384GetKlass(),
        x::xmlSecOpenSSLTransformSha512GetKlass(),
    ];
    let signature: [x::xmlSecTransformId; 14] = [
        x::xmlSecTransformExclC14NGetKlass(),
        x::xmlSecTransformExclC14NWithCommentsGetKlass(),
        x::xmlSecTransformInclC14NGetKlass(),
        x::xmlSecTransformInclC14NWithCommentsGetKlass(),
        x::xmlSecTransformInclC14N11GetKlass(),
        x::xmlSecTransformInclC14N11WithCommentsGetKlass(),
        x::xmlSecOpenSSLTransformRsaSha1GetKlass(),
        x::xmlSecOpenSSLTransformRsaSha256GetKlass(),
        x::xmlSecOpenSSLTransformRsaSha384GetKlass(),
        x::xmlSecOpenSSLTransformRsaSha512GetKlass(),
        x::xmlSecOpenSSLTransformEcdsaSha1GetKlass(),
        x::xmlSecOpenSSLTransformEcdsaSha256GetKlass(),
        x::xmlSecOpenSSLTransformEcdsaSha384GetKlass(),
        x::xmlSecOpenSSLTransformEcdsaSha512GetKlass(),
    ];
    for id in reference {
        if x::xmlSecDSigCtxEnableReferenceTransform(ctx, id) < 0 {
            return Err(reject(
                Reason::SignatureInvalid,
                "xmlsec refused a transform restriction",
            ));
        }
    }
    for id in signature {
        if x::xmlSecDSigCtxEnableSignatureTransform(ctx, id) < 0 {
            return Err(reject(
                Reason::SignatureInvalid,
                "xmlsec refused a transform restriction",
            ));
        }
    }
    Ok(())
}

/// Whether a Reference xmlsec processed failed its digest comparison.
unsafe fn reference_failed(ctx: x::xmlSecDSigCtxPtr) -> bool {
    let list = &mut (*ctx).signedInfoReferences as *mut x::xmlSecPtrList;
    (0..x::xmlSecPtrListGetSize(list)).any(|i| {
        let reference = x::xmlSecPtrListGetItem(list, i) as x::xmlSecDSigReferenceCtxPtr;
        !reference.is_null() && (*reference).status == x::xmlSecDSigStatus_xmlSecDSigStatusInvalid
    })
}

/// The pre-digest buffer of the single SignedInfo Reference.
unsafe fn signed_reference_bytes(ctx: x::xmlSecDSigCtxPtr) -> Result<Vec<u8>, Reject> {
    let list = &mut (*ctx).signedInfoReferences as *mut x::xmlSecPtrList;
    if x::xmlSecPtrListGetSize(list) != 1 {
        return Err(reject(
            Reason::ReferenceInvalid,
            "the signature must have exactly one Reference",
        ));
    }
    let reference = x::xmlSecPtrListGetItem(list, 0) as x::xmlSecDSigReferenceCtxPtr;
    let buffer = x::xmlSecDSigReferenceCtxGetPreDigestBuffer(reference);
    if reference.is_null() || buffer.is_null() {
        return Err(reject(
            Reason::SignatureInvalid,
            "xmlsec kept no signed bytes for the Reference",
        ));
    }
    let data = x::xmlSecBufferGetData(buffer);
    let size = x::xmlSecBufferGetSize(buffer) as usize;
    if data.is_null() || size == 0 {
        return Err(reject(
            Reason::ReferenceInvalid,
            "the Reference digested no bytes",
        ));
    }
    Ok(std::slice::from_raw_parts(data, size).to_vec())
}
