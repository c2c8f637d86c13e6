//! Settings. Both weaken or loosen a check, so both are superuser-only (`Suset`).

use std::ffi::CString;

use chrono::{DateTime, Utc};
use pgrx::prelude::*;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// Default for `saml_jit.max_response_bytes`: 1 MB of base64.
pub const DEFAULT_MAX_RESPONSE_BYTES: i32 = 1024 * 1024;

static NOW_OVERRIDE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static AUDIT_DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));
static AUDIT_RETENTION: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static SESSION_RETENTION: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"30 days"));
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
        c"saml_jit.session_retention",
        c"How long saml_jit_purge keeps sessions after they ended or ran out.",
        c"An interval; the default is 30 days.",
        &SESSION_RETENTION,
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
/// clock, so a test never passes for the wrong reason. The override is
/// honoured only in a superuser's session: before the library is loaded,
/// `saml_jit.now_override` is a placeholder that any role may SET, and a
/// role allowed to run `saml_jit_purge` or `saml_jit_deprovision_expired`
/// could otherwise move time to 2100, purge live replay rows and expire every
/// user. Every entry point, SQL ones included (`saml_jit.effective_now()`),
/// reads time here.
pub fn now() -> Result<DateTime<Utc>, String> {
    let Some(raw) = NOW_OVERRIDE.get() else {
        return Ok(Utc::now());
    };
    let text = raw.to_string_lossy();
    let text = text.trim();
    if text.is_empty() {
        return Ok(Utc::now());
    }
    // SAFETY: plain catalog lookups of the session's own user.
    let superuser_session = unsafe { pg_sys::superuser_arg(pg_sys::GetSessionUserId()) };
    if !superuser_session {
        return Err(format!(
            "saml_jit.now_override is set ({text:?}) in a session whose user is not a superuser; \
             it is a test setting that only a superuser's session may use, so nothing runs with it"
        ));
    }
    crate::saml::time::parse_instant(text)
        .map_err(|e| format!("saml_jit.now_override = {text:?} is not a timestamp: {e}"))
}

/// The instant the SQL lifecycle functions use (through
/// `saml_jit.effective_now()`), read through the registered superuser-only
/// setting: calling it loads the library, which registers the setting, so a
/// placeholder value set by anyone is checked here too.
#[pg_extern(stable, parallel_safe)]
fn saml_jit_effective_now() -> TimestampWithTimeZone {
    match now() {
        Ok(t) => crate::pg::timestamptz(t),
        Err(msg) => crate::pg::raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            msg,
            None,
            None,
        ),
    }
}

pub fn max_response_bytes() -> usize {
    usize::try_from(MAX_RESPONSE_BYTES.get()).unwrap_or(usize::MAX)
}

// The lifecycle functions read time through effective_now.
extension_sql_file!(
    "../sql/lifecycle.sql",
    name = "lifecycle",
    requires = ["trust", saml_jit_effective_now]
);
