//! The SPI side of a login: trust configuration in, replay row, user upsert
//! and audit row out. Every statement is schema-qualified and parameterized.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use pgrx::prelude::*;
use pgrx::spi::SpiResult;
use pgrx::{JsonB, Uuid};

use super::mapping::{MappingRule, UserRecord};
use crate::api::timestamptz;
use crate::saml::validate::{Accepted, Policy};
use crate::saml::verify::TrustedKey;

/// An IdP's row and its SP, as the login needs them.
pub struct IdpConfig {
    pub id: i64,
    pub enabled: bool,
    pub jit_create: bool,
    pub jit_update: bool,
    pub policy: Policy,
}

const IDP_BY_ENTITY_ID: &str = "
    SELECT idp.id, idp.enabled, idp.allow_sha1, idp.require_audience, idp.allow_idp_initiated,
           (extract(epoch FROM idp.clock_skew) * 1000000)::bigint, idp.user_key,
           idp.jit_create, idp.jit_update, sp.entity_id, sp.acs_url
      FROM saml_jit.identity_provider idp
      JOIN saml_jit.service_provider sp ON sp.id = idp.sp_id
     WHERE idp.entity_id = $1";

pub fn find_idp(entity_id: &str) -> SpiResult<Option<IdpConfig>> {
    Spi::connect(|client| {
        let table = client.select(IDP_BY_ENTITY_ID, Some(1), &[entity_id.into()])?;
        let Some(row) = table.into_iter().next() else {
            return Ok(None);
        };
        let skew_micros: i64 = row.get(6)?.unwrap_or(0);
        Ok(Some(IdpConfig {
            id: row.get(1)?.unwrap_or_default(),
            enabled: row.get(2)?.unwrap_or(false),
            jit_create: row.get(8)?.unwrap_or(false),
            jit_update: row.get(9)?.unwrap_or(false),
            policy: Policy {
                idp_entity_id: entity_id.to_string(),
                allow_sha1: row.get(3)?.unwrap_or(false),
                require_audience: row.get(4)?.unwrap_or(true),
                allow_idp_initiated: row.get(5)?.unwrap_or(false),
                clock_skew: Duration::microseconds(skew_micros),
                user_key: row.get(7)?.unwrap_or_else(|| "name_id".into()),
                sp_entity_id: row.get(10)?.unwrap_or_default(),
                acs_url: row.get(11)?.unwrap_or_default(),
            },
        }))
    })
}

const ACTIVE_CERTIFICATES: &str = "
    SELECT c.id, c.certificate
      FROM saml_jit.idp_certificate c
      JOIN saml_jit.identity_provider idp ON idp.id = c.idp_id
     WHERE c.idp_id = $1 AND c.active
       AND (NOT idp.reject_expired_certificates OR c.not_after > $2)
     ORDER BY c.id";

/// The IdP's active signing keys (all of them: rollover).
pub fn trusted_keys(idp_id: i64, now: DateTime<Utc>) -> SpiResult<Vec<(i64, Vec<u8>)>> {
    Spi::connect(|client| {
        let table = client.select(
            ACTIVE_CERTIFICATES,
            None,
            &[idp_id.into(), timestamptz(now).into()],
        )?;
        let mut out = Vec::new();
        for row in table {
            let id: i64 = row.get(1)?.unwrap_or_default();
            let pem: String = row.get(2)?.unwrap_or_default();
            out.push((id, der_of_pem(&pem)));
        }
        Ok(out)
    })
}

/// The stored PEM is normalized by the table trigger, so this cannot fail
/// for a stored row; a corrupted one yields no bytes and fails verification.
fn der_of_pem(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap_or_default()
}

pub fn load_keys(rows: Vec<(i64, Vec<u8>)>) -> Vec<TrustedKey> {
    rows.into_iter()
        .filter_map(|(id, der)| TrustedKey::from_certificate_der(id, &der).ok())
        .collect()
}

/// Records the assertion as consumed. False when it already was (replay).
/// Two sessions racing on one assertion serialize on the primary key: the
/// second waits for the first to commit and then sees the conflict.
pub fn consume_assertion(
    idp_id: i64,
    assertion_id: &str,
    valid_until: DateTime<Utc>,
) -> SpiResult<bool> {
    Spi::connect_mut(|client| {
        let table = client.update(
            "INSERT INTO saml_jit.consumed_assertion (idp_id, assertion_id, valid_until)
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1",
            None,
            &[
                idp_id.into(),
                assertion_id.into(),
                timestamptz(valid_until).into(),
            ],
        )?;
        Ok(table.len() == 1)
    })
}

/// Outcome of the user upsert.
pub enum Upsert {
    Done { user_id: Uuid, created: bool },
    Disabled,
    NotProvisioned,
}

// One statement: no read-then-write race between concurrent first logins.
// A disabled user's row is left untouched (the WHERE makes it return nothing).
const UPSERT_USER: &str = "
    INSERT INTO saml_jit.users AS u
           (idp_id, subject, name_id, name_id_format, email, first_name, last_name, display_name,
            title, organization, employee_number, groups, attributes, last_login_at, login_count)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, now(), 1)
    ON CONFLICT (idp_id, subject) DO UPDATE SET
           name_id = CASE WHEN $14 THEN EXCLUDED.name_id ELSE u.name_id END,
           name_id_format = CASE WHEN $14 THEN EXCLUDED.name_id_format ELSE u.name_id_format END,
           email = CASE WHEN $14 THEN EXCLUDED.email ELSE u.email END,
           first_name = CASE WHEN $14 THEN EXCLUDED.first_name ELSE u.first_name END,
           last_name = CASE WHEN $14 THEN EXCLUDED.last_name ELSE u.last_name END,
           display_name = CASE WHEN $14 THEN EXCLUDED.display_name ELSE u.display_name END,
           title = CASE WHEN $14 THEN EXCLUDED.title ELSE u.title END,
           organization = CASE WHEN $14 THEN EXCLUDED.organization ELSE u.organization END,
           employee_number = CASE WHEN $14 THEN EXCLUDED.employee_number ELSE u.employee_number END,
           groups = CASE WHEN $14 THEN EXCLUDED.groups ELSE u.groups END,
           attributes = CASE WHEN $14 THEN EXCLUDED.attributes ELSE u.attributes END,
           status = 'active',
           updated_at = now(),
           last_login_at = now(),
           login_count = u.login_count + 1
     WHERE u.status <> 'disabled'
    RETURNING u.id, (u.xmax = 0)";

const UPDATE_EXISTING_ONLY: &str = "
    UPDATE saml_jit.users u SET last_login_at = now(), login_count = u.login_count + 1,
           status = 'active', updated_at = now()
     WHERE u.idp_id = $1 AND u.subject = $2 AND u.status <> 'disabled'
    RETURNING u.id, false";

const USER_EXISTS: &str = "SELECT status FROM saml_jit.users WHERE idp_id = $1 AND subject = $2";

pub fn upsert_user(idp: &IdpConfig, accepted: &Accepted, user: &UserRecord) -> SpiResult<Upsert> {
    Spi::connect_mut(|client| {
        let table = if idp.jit_create {
            client.update(
                UPSERT_USER,
                None,
                &[
                    idp.id.into(),
                    accepted.subject.as_str().into(),
                    accepted.name_id.clone().into(),
                    accepted.name_id_format.clone().into(),
                    user.email.clone().into(),
                    user.first_name.clone().into(),
                    user.last_name.clone().into(),
                    user.display_name.clone().into(),
                    user.title.clone().into(),
                    user.organization.clone().into(),
                    user.employee_number.clone().into(),
                    user.groups.clone().into(),
                    JsonB(user.attributes.clone()).into(),
                    idp.jit_update.into(),
                ],
            )?
        } else {
            client.update(
                UPDATE_EXISTING_ONLY,
                None,
                &[idp.id.into(), accepted.subject.as_str().into()],
            )?
        };
        if let Some(row) = table.into_iter().next() {
            return Ok(Upsert::Done {
                user_id: row.get(1)?.expect("users.id is NOT NULL"),
                created: row.get(2)?.unwrap_or(false),
            });
        }
        let status: Option<String> = client
            .select(
                USER_EXISTS,
                Some(1),
                &[idp.id.into(), accepted.subject.as_str().into()],
            )?
            .next()
            .map(|r| r.get(1))
            .transpose()?
            .flatten();
        Ok(match status.as_deref() {
            Some("disabled") => Upsert::Disabled,
            _ => Upsert::NotProvisioned,
        })
    })
}

/// One audit row.
pub struct AuditEntry<'a> {
    pub event: &'a str,
    pub reason: Option<&'a str>,
    pub idp_id: Option<i64>,
    pub user_id: Option<Uuid>,
    pub subject: Option<&'a str>,
    pub assertion_id: Option<&'a str>,
    pub client_addr: Option<String>,
    pub detail: serde_json::Value,
}

pub fn audit(entry: AuditEntry<'_>) -> SpiResult<()> {
    Spi::connect_mut(|client| {
        client.update(
            "INSERT INTO saml_jit.audit_log
                    (event, reason, idp_id, user_id, subject, assertion_id, client_addr, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7::inet, $8)",
            None,
            &[
                entry.event.into(),
                entry.reason.into(),
                entry.idp_id.into(),
                entry.user_id.into(),
                entry.subject.into(),
                entry.assertion_id.into(),
                entry.client_addr.into(),
                JsonB(entry.detail).into(),
            ],
        )?;
        Ok(())
    })
}

const MAPPING_RULES: &str = "
    SELECT attribute, target, required, default_value
      FROM saml_jit.attribute_mapping
     WHERE idp_id = $1 OR idp_id IS NULL
     ORDER BY idp_id NULLS LAST, id";

/// The IdP's mapping rules, its own first, then those for all IdPs.
pub fn mapping_rules(idp_id: i64) -> SpiResult<Vec<MappingRule>> {
    Spi::connect(|client| {
        let mut rules = Vec::new();
        for row in client.select(MAPPING_RULES, None, &[idp_id.into()])? {
            rules.push(MappingRule {
                attribute: row.get(1)?.unwrap_or_default(),
                target: row.get(2)?.unwrap_or_default(),
                required: row.get(3)?.unwrap_or(false),
                default_value: row.get(4)?,
            });
        }
        Ok(rules)
    })
}
