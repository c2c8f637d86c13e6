//! saml_jit: SAML 2.0 just-in-time provisioning inside PostgreSQL.
//!
//! The flow of one login (see DESIGN.md): decode -> parse -> verify ->
//! extract -> validate -> record -> map -> entitle -> upsert -> hook ->
//! audit, carried by `login`. `saml` holds the pure-Rust verification core,
//! `provision` the database side, `api` the SQL boundary; dependencies point
//! one way: api -> login -> provision / saml.

use pgrx::prelude::*;

pub mod api;
pub mod authn_request;
pub mod explain;
pub mod federation;
pub mod gucs;
pub mod login;
pub mod logout;
pub mod outgoing;
pub mod pg;
pub mod provision;
pub mod saml;
pub mod trust;

::pgrx::pg_module_magic!(name, version);

// The schema (tables, indexes, triggers) exists before any Rust function.
extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
    provision::rejections::init();
}

#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;
