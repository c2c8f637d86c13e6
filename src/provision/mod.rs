//! Provisioning: mapping (pure) and the SPI writes of a login (replay row,
//! user upsert, audit row), all in the caller's transaction.

pub mod changes;
pub mod config;
pub mod entitle;
pub mod expiry;
pub mod mapping;
pub mod plans;
pub mod rejections;
pub mod store;
