//! Settings. Both weaken or loosen a check, so both are superuser-only (`Suset`).

use std::ffi::CString;

use chrono::{DateTime, Utc};
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// Default for `saml_jit.max_response_bytes`: 1 MB of base64.
pub const DEFAULT_MAX_RESPONSE_BYTES: i32 = 1024 * 1024;

static NOW_OVERRIDE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static AUDIT_DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));
static AUDIT_RETENTION: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static MAX_RESPONSE_BYTES: GucSetting<i32> = GucSetting::<i32>::new(DEFAULT_MAX_RESPONSE_BYTES);

pub fn init() {
    GucRegistry::define_string_guc(
        c"saml_jit.now_override",
        c"Fixed instant used instead of the clock for every SAML time check.",
        c"Empty means the real clock. Exists so recorded responses can be verified in tests; \
          an RFC 3339 timestamp such as 2014-02-19T01:38:01Z.",
        &NOW_OVERRIDE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"saml_jit.max_response_bytes",
        c"Largest accepted base64 SAMLResponse, in bytes.",
        c"Larger inputs are rejected with reason too_large before any decoding.",
        &MAX_RESPONSE_BYTES,
        1024,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"saml_jit.audit_retention",
        c"How long saml_jit_purge (run by saml_jit_deprovision_expired) keeps audit rows.",
        c"An interval such as '400 days'; empty keeps the audit log forever.",
        &AUDIT_RETENTION,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"saml_jit.audit_database",
        c"Database whose saml_jit.audit_log receives rejected logins.",
        c"The audit writer (a background worker, started when saml_jit is in \
          shared_preload_libraries) connects to this database when it starts. \
          (Sighup, not Postmaster: the library must also load after startup.)",
        &AUDIT_DATABASE,
        GucContext::Sighup,
        GucFlags::default(),
    );
}

pub fn audit_database() -> String {
    AUDIT_DATABASE
        .get()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "postgres".into())
}

/// The instant every time check uses: `saml_jit.now_override` when set, else the clock.
///
/// An unparsable override is an error rather than a silent fallback to the
/// clock, so a test never passes for the wrong reason.
pub fn now() -> Result<DateTime<Utc>, String> {
    match NOW_OVERRIDE.get() {
        None => Ok(Utc::now()),
        Some(raw) => {
            let text = raw.to_string_lossy();
            let text = text.trim();
            if text.is_empty() {
                return Ok(Utc::now());
            }
            crate::saml::time::parse_instant(text)
                .map_err(|e| format!("saml_jit.now_override = {text:?} is not a timestamp: {e}"))
        }
    }
}

pub fn max_response_bytes() -> usize {
    usize::try_from(MAX_RESPONSE_BYTES.get()).unwrap_or(usize::MAX)
}
