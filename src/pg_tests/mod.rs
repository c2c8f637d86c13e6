//! `#[pg_test]`: SQL behaviour inside a real backend, each test in its own
//! rolled-back transaction.

mod login;
mod trust;

use pgrx::prelude::*;

/// Runs `sql` and returns "SQLSTATE: message" of the error it raises, or None.
pub fn error_of(sql: &str) -> Option<String> {
    Spi::run(
        "CREATE OR REPLACE FUNCTION pg_temp.error_of(q text) RETURNS text
         LANGUAGE plpgsql AS $$
         BEGIN EXECUTE q; RETURN NULL;
         EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$",
    )
    .expect("create helper");
    Spi::get_one_with_args::<String>("SELECT pg_temp.error_of($1)", &[sql.into()])
        .expect("helper runs")
}

/// Asserts that `sql` fails with `sqlstate` and a message containing `needle`.
pub fn assert_fails(sql: &str, sqlstate: &str, needle: &str) {
    let err = error_of(sql).unwrap_or_else(|| panic!("expected {sqlstate} from: {sql}"));
    assert!(
        err.starts_with(sqlstate) && err.contains(needle),
        "expected {sqlstate} containing {needle:?}, got {err:?} from: {sql}"
    );
}

pub const DEMO_CERT: &str = include_str!("../../pgrx-tests/fixtures/demo-idp.crt");
pub const DEMO_KEY: &str = include_str!("../../pgrx-tests/fixtures/demo-idp.key");
