//! Small PostgreSQL helpers every layer uses: raising an error with a
//! SQLSTATE, chrono instants as `timestamptz`, and `jsonb` built in binary
//! form (jsonb.rs).

pub mod jsonb;

use chrono::{DateTime, Utc};
use pgrx::prelude::*;

/// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// A chrono instant as a `timestamptz`.
pub fn timestamptz(t: DateTime<Utc>) -> TimestampWithTimeZone {
    let micros = t.timestamp_micros() - PG_EPOCH_OFFSET_MICROS;
    TimestampWithTimeZone::try_from(micros).unwrap_or_else(|_| {
        if micros > 0 {
            TimestampWithTimeZone::positive_infinity()
        } else {
            TimestampWithTimeZone::negative_infinity()
        }
    })
}

/// Raises an ERROR with a SQLSTATE, a message, and optionally DETAIL and HINT.
pub fn raise(
    code: PgSqlErrorCode,
    message: String,
    detail: Option<String>,
    hint: Option<&str>,
) -> ! {
    let mut report = pgrx::pg_sys::panic::ErrorReport::new(code, message, "saml_jit");
    if let Some(detail) = detail {
        report = report.set_detail(detail);
    }
    if let Some(hint) = hint {
        report = report.set_hint(hint);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}
