//! Helpers shared by the integration tests: a real PostgreSQL server started
//! by `scripts/test` (its libpq DSN in `SAML_JIT_TEST_DSN`), one fresh database
//! per test so tests can run in parallel without seeing each other.

use std::path::PathBuf;

pub use postgres::{Client, NoTls};

/// The DSN of the test cluster; the tests are meant to run through scripts/test.
pub fn dsn() -> String {
    std::env::var("SAML_JIT_TEST_DSN").unwrap_or_else(|_| {
        panic!("SAML_JIT_TEST_DSN is not set: run the integration tests through scripts/test")
    })
}

/// A DSN for `database` as `user` on the test cluster.
pub fn dsn_for(database: &str, user: &str) -> String {
    format!("{} dbname={database} user={user}", dsn())
}

/// Creates (or recreates) database `name` with the extension installed and
/// returns a superuser connection to it.
pub fn fresh_database(name: &str) -> Client {
    let mut admin = Client::connect(&dsn(), NoTls).expect("connect to the test cluster");
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .expect("drop old test database");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create test database");
    let mut client = Client::connect(&dsn_for(name, "postgres"), NoTls).expect("connect");
    client
        .batch_execute("CREATE EXTENSION saml_jit")
        .expect("CREATE EXTENSION saml_jit");
    client
}

/// The SQLSTATE code of a failed statement ("" when the error has none).
pub fn sqlstate(err: &postgres::Error) -> String {
    err.code().map(|c| c.code().to_string()).unwrap_or_default()
}

/// Files of this crate (fixtures).
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// The shared conformance corpus beside the checkout, if present.
pub fn conformance_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance");
    dir.join("cases.json").is_file().then_some(dir)
}
