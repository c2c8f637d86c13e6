//! The trust and mapping configuration a login reads, cached per backend.
//!
//! Without the cache a login ran four configuration queries (the IdP row, its
//! certificates, its mapping rules, whether group rules exist) before doing
//! any work. Now it reads one number, `saml_jit.config_version`, which every
//! write to a configuration table changes (statement triggers in
//! sql/schema.sql), and reuses what it loaded while the number it sees stays
//! the same. Any difference reloads; version numbers come from a sequence and
//! are never reused, so a rolled-back change cannot leave a cache that looks
//! current.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use chrono::{DateTime, Utc};
use pgrx::prelude::*;
use pgrx::spi::SpiResult;

use super::mapping::MappingRule;
use super::plans;
use super::store::{self, IdpConfig};
use crate::saml::verify::TrustedKey;

/// Everything a login needs to know about one IdP.
pub struct IdpSnapshot {
    pub config: IdpConfig,
    /// Active certificates with their expiry, in id order.
    keys: Vec<(Rc<TrustedKey>, DateTime<Utc>)>,
    pub mapping_rules: Vec<MappingRule>,
    pub has_group_rules: bool,
}

impl IdpSnapshot {
    /// The keys a signature may verify with at `now` (expired certificates
    /// drop out when the IdP has reject_expired_certificates).
    pub fn trusted_keys(&self, now: DateTime<Utc>) -> Vec<Rc<TrustedKey>> {
        self.keys
            .iter()
            .filter(|(_, not_after)| !self.config.reject_expired_certificates || *not_after > now)
            .map(|(key, _)| key.clone())
            .collect()
    }
}

#[derive(Default)]
struct Cache {
    version: Option<i64>,
    idps: HashMap<String, Rc<IdpSnapshot>>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::default();
}

const CONFIG_VERSION: &str = "SELECT version FROM saml_jit.config_version";

/// None when the row is missing (someone emptied the table): then nothing
/// is cached and every login reads the configuration afresh.
fn current_version() -> SpiResult<Option<i64>> {
    Spi::connect(|client| {
        let table = plans::select(client, CONFIG_VERSION, Some(1), &[])?;
        if table.is_empty() {
            return Ok(None);
        }
        table.first().get_one::<i64>()
    })
}

const SCHEMA_VERSION: &str =
    "SELECT extversion::text FROM pg_catalog.pg_extension WHERE extname = 'saml_jit'";

/// After a package upgrade and before `ALTER EXTENSION saml_jit UPDATE`, the
/// new library meets the old schema: say so, instead of failing on a column
/// the old schema lacks. Checked whenever the configuration is loaded, so
/// not on the hot path.
fn check_schema_version() -> SpiResult<()> {
    let installed = Spi::connect(|client| {
        plans::select(client, SCHEMA_VERSION, Some(1), &[])?
            .first()
            .get_one::<String>()
    })?;
    let library = env!("CARGO_PKG_VERSION");
    match installed {
        Some(sql) if sql != library => crate::pg::raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "saml_jit: the library is version {library}, but this database has the SQL objects of version {sql}"
            ),
            None,
            Some("Run ALTER EXTENSION saml_jit UPDATE in this database (README, \"Upgrading\")."),
        ),
        _ => Ok(()),
    }
}

/// The IdP whose entity ID is `entity_id`, or None when none is trusted.
pub fn idp(entity_id: &str) -> SpiResult<Option<Rc<IdpSnapshot>>> {
    let version = current_version()?;
    let cached = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.version != version || version.is_none() {
            c.idps.clear();
            c.version = version;
        }
        c.idps.get(entity_id).cloned()
    });
    if let Some(snapshot) = cached {
        return Ok(Some(snapshot));
    }
    check_schema_version()?;
    let Some(config) = store::find_idp(entity_id)? else {
        return Ok(None);
    };
    let snapshot = Rc::new(IdpSnapshot {
        keys: store::active_keys(config.id)?,
        mapping_rules: store::mapping_rules(config.id)?,
        has_group_rules: store::has_group_rules(config.id)?,
        config,
    });
    CACHE.with(|c| {
        c.borrow_mut()
            .idps
            .insert(entity_id.to_string(), snapshot.clone())
    });
    Ok(Some(snapshot))
}
