//! The hook step: the application's own `on_login` function, called inside
//! the login's transaction after the user row is written.
//!
//! The call runs in a subtransaction, as a PL/pgSQL `EXCEPTION` block would:
//! when the hook raises, what it wrote is rolled back and the login is
//! refused as `provisioning_refused` with the hook's message, and the
//! rejection then aborts the whole login. Errors that are not the hook's
//! verdict (a cancel or statement_timeout, a deadlock or serialization
//! failure the caller may retry, out of memory, internal errors) are not
//! turned into a refusal: they propagate as they are.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;

use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::IntoDatum;

use crate::pg::jsonb::Jsonb;

use crate::provision::store;
use crate::saml::{reject, Reason, Reject};

thread_local! {
    /// True while a hook runs: a hook must not start another login.
    static RUNNING: Cell<bool> = const { Cell::new(false) };
}

/// Whether an on_login hook is running in this backend right now.
pub fn running() -> bool {
    RUNNING.with(Cell::get)
}

/// Calls `hook(event)`. Err(Reject) when the hook cannot be called or raised.
pub fn call(hook: pg_sys::Oid, event: serde_json::Value) -> Result<(), HookError> {
    if let Some(problem) = store::hook_problem(hook)? {
        return Err(refused(format!(
            "the on_login hook cannot be called: {problem}"
        )));
    }
    let event = Jsonb::owned(event)
        .into_datum()
        .expect("a jsonb value is never NULL");
    RUNNING.with(|r| r.set(true));
    let outcome = in_subtransaction(AssertUnwindSafe(|| {
        // SAFETY: `hook` was just checked to be a function (jsonb) -> void.
        unsafe { invoke(hook, event) }
    }));
    RUNNING.with(|r| r.set(false));
    match outcome {
        Ok(()) => Ok(()),
        Err(caught) => {
            let (code, message) = describe(&caught);
            if propagates(code) {
                (*caught).rethrow()
            }
            Err(refused(message))
        }
    }
}

pub enum HookError {
    Refused(Reject),
    Spi(pgrx::spi::SpiError),
}

impl From<pgrx::spi::SpiError> for HookError {
    fn from(e: pgrx::spi::SpiError) -> Self {
        HookError::Spi(e)
    }
}

fn refused(detail: String) -> HookError {
    HookError::Refused(reject(Reason::ProvisioningRefused, detail))
}

/// Calls a one-argument function through fmgr, ignoring its (void) result:
/// OidFunctionCall1 would call a NULL result an error, and a SQL-language
/// function whose last statement is an INSERT returns NULL as its void.
unsafe fn invoke(hook: pg_sys::Oid, argument: pg_sys::Datum) {
    let mut flinfo: pg_sys::FmgrInfo = std::mem::zeroed();
    pg_sys::fmgr_info(hook, &mut flinfo);
    // LOCAL_FCINFO(fcinfo, 1): the call info with room for one argument.
    let size = std::mem::size_of::<pg_sys::FunctionCallInfoBaseData>()
        + std::mem::size_of::<pg_sys::NullableDatum>();
    let fcinfo = pg_sys::palloc0(size) as pg_sys::FunctionCallInfo;
    (*fcinfo).flinfo = &mut flinfo;
    (*fcinfo).nargs = 1;
    (*fcinfo).fncollation = pg_sys::InvalidOid;
    (*fcinfo).args.as_mut_slice(1)[0] = pg_sys::NullableDatum {
        value: argument,
        isnull: false,
    };
    let function = flinfo.fn_addr.expect("fmgr_info sets fn_addr");
    pg_sys::ffi::pg_guard_ffi_boundary(|| function(fcinfo));
    pg_sys::pfree(fcinfo.cast());
}

/// Runs `f` in a subtransaction: released when it returns, rolled back (with
/// everything `f` wrote) when it raises, whose error is returned.
fn in_subtransaction(f: AssertUnwindSafe<impl FnOnce()>) -> Result<(), Box<CaughtError>> {
    // SAFETY: the same sequence as PL/pgSQL's exec_stmt_block: remember the
    // memory context and resource owner, start the subtransaction, and
    // restore both after releasing or rolling it back.
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        let outcome = PgTryBuilder::new(move || {
            f();
            Ok(())
        })
        .catch_others(|e| Err(Box::new(e)))
        .execute();
        match outcome {
            Ok(()) => pg_sys::ReleaseCurrentSubTransaction(),
            Err(_) => pg_sys::RollbackAndReleaseCurrentSubTransaction(),
        }
        pg_sys::MemoryContextSwitchTo(context);
        pg_sys::CurrentResourceOwner = owner;
        outcome
    }
}

fn describe(caught: &CaughtError) -> (PgSqlErrorCode, String) {
    let report = match caught {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r,
        CaughtError::RustPanic { ereport, .. } => ereport,
    };
    (report.sql_error_code(), report.message().to_string())
}

/// SQLSTATE classes that are not the hook's verdict on the user.
fn propagates(code: PgSqlErrorCode) -> bool {
    // The class is the first two characters: the low 12 bits of the code.
    let class = |c: PgSqlErrorCode| (c as i32) & 0xFFF;
    [
        PgSqlErrorCode::ERRCODE_QUERY_CANCELED, // 57: cancel, timeout, shutdown
        PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE, // 40: retry the transaction
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_RESOURCES, // 53: out of memory, disk
        PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED, // 54
        PgSqlErrorCode::ERRCODE_SYSTEM_ERROR,   // 58
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, // XX
    ]
    .iter()
    .any(|&c| class(c) == class(code))
}
