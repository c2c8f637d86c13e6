//! SPI statements prepared once per backend. Parsing and planning were the
//! largest single cost of a login before (perf: raw_parser, planner and
//! expression walkers in ~a third of the samples of the hot path). Plans are
//! kept with SPI_keepplan for the backend's lifetime; PostgreSQL's plan cache
//! revalidates them when the tables they use change.

use std::cell::RefCell;
use std::collections::HashMap;

use pgrx::datum::DatumWithOid;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiResult, SpiTupleTable};
use pgrx::PgOid;

thread_local! {
    /// Keyed by the address of the statement's `&'static str`. Leaked on
    /// purpose: a plan lives as long as the backend, and no borrow of the map
    /// is held while a statement runs (triggers may re-enter).
    static PLANS: RefCell<HashMap<usize, &'static OwnedPreparedStatement>> = RefCell::default();
}

fn plan(
    client: &SpiClient<'_>,
    sql: &'static str,
    args: &[DatumWithOid<'_>],
    mutating: bool,
) -> SpiResult<&'static OwnedPreparedStatement> {
    let key = sql.as_ptr() as usize;
    if let Some(p) = PLANS.with(|m| m.borrow().get(&key).copied()) {
        return Ok(p);
    }
    let types: Vec<PgOid> = args.iter().map(|a| PgOid::from(a.oid())).collect();
    let prepared = if mutating {
        client.prepare_mut(sql, &types)?
    } else {
        client.prepare(sql, &types)?
    };
    let kept: &'static OwnedPreparedStatement = Box::leak(Box::new(prepared.keep()));
    PLANS.with(|m| m.borrow_mut().insert(key, kept));
    Ok(kept)
}

/// Runs a read-only statement through its kept plan.
pub fn select<'conn>(
    client: &SpiClient<'conn>,
    sql: &'static str,
    limit: Option<i64>,
    args: &[DatumWithOid<'_>],
) -> SpiResult<SpiTupleTable<'conn>> {
    let p = plan(client, sql, args, false)?;
    client.select(p, limit.map(|l| l as _), args)
}

/// Runs a writing statement through its kept plan.
pub fn update<'conn>(
    client: &mut SpiClient<'conn>,
    sql: &'static str,
    limit: Option<i64>,
    args: &[DatumWithOid<'_>],
) -> SpiResult<SpiTupleTable<'conn>> {
    let p = plan(client, sql, args, true)?;
    client.update(p, limit.map(|l| l as _), args)
}
