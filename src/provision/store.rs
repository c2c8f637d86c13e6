//! The SPI side of a login: trust configuration in, replay row, user upsert
//! and audit row out. Every statement is schema-qualified and parameterized.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::SpiResult;
use pgrx::{JsonB, Uuid};

use super::expiry::{Expiry, ExpiryPolicy};
use super::mapping::{MappingRule, UserRecord};
use super::plans;
use crate::pg::jsonb::Jsonb;
use crate::pg::timestamptz;
use crate::saml::text::xml_trim;
use crate::saml::validate::{Accepted, Policy};
use crate::saml::verify::TrustedKey;

/// An IdP's row and its SP, as the login needs them.
pub struct IdpConfig {
    pub id: i64,
    pub sp_id: i64,
    pub enabled: bool,
    pub jit_create: bool,
    pub jit_update: bool,
    pub keep_unmapped_groups: bool,
    pub reject_expired_certificates: bool,
    pub expiry: ExpiryPolicy,
    pub policy: Policy,
    /// The on_login hook: the IdP's own, else its SP's.
    pub hook: Option<pg_sys::Oid>,
    /// Canonical patterns (sql/jit.sql stores them so), or None: no check.
    pub email_domains: Option<Vec<String>>,
    pub required_groups: Option<Vec<String>>,
}

const IDP_BY_ENTITY_ID: &str = "
    SELECT idp.id, idp.enabled, idp.allow_sha1, idp.require_audience, idp.allow_idp_initiated,
           (extract(epoch FROM idp.clock_skew) * 1000000)::bigint, idp.user_key,
           idp.jit_create, idp.jit_update, sp.entity_id, sp.acs_url,
           idp.unmapped_groups = 'keep', idp.expiry_attribute,
           (extract(epoch FROM idp.account_ttl) * 1000000)::bigint, idp.expiry_fallback, idp.sp_id,
           idp.reject_expired_certificates, coalesce(idp.on_login, sp.on_login)::oid,
           idp.email_domains, idp.required_groups
      FROM saml_jit.identity_provider idp
      JOIN saml_jit.service_provider sp ON sp.id = idp.sp_id
     WHERE idp.entity_id = $1";

pub fn find_idp(entity_id: &str) -> SpiResult<Option<IdpConfig>> {
    Spi::connect(|client| {
        let table = plans::select(client, IDP_BY_ENTITY_ID, Some(1), &[entity_id.into()])?;
        let Some(row) = table.into_iter().next() else {
            return Ok(None);
        };
        let skew_micros: i64 = row.get(6)?.unwrap_or(0);
        Ok(Some(IdpConfig {
            id: row.get(1)?.unwrap_or_default(),
            enabled: row.get(2)?.unwrap_or(false),
            jit_create: row.get(8)?.unwrap_or(false),
            jit_update: row.get(9)?.unwrap_or(false),
            keep_unmapped_groups: row.get(12)?.unwrap_or(true),
            sp_id: row.get(16)?.unwrap_or_default(),
            reject_expired_certificates: row.get(17)?.unwrap_or(false),
            hook: row.get(18)?,
            email_domains: row.get(19)?,
            required_groups: row.get(20)?,
            expiry: ExpiryPolicy {
                attribute: row.get(13)?,
                account_ttl: row.get::<i64>(14)?.map(Duration::microseconds),
                fallback: row.get(15)?.unwrap_or_else(|| "account_ttl".into()),
            },
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

thread_local! {
    /// Parsed keys, per certificate row and fingerprint: a certificate row
    /// that changes gets a new fingerprint (the table trigger recomputes it),
    /// so a stale key can never be used; rows that disappear are simply no
    /// longer asked for. Outlives the configuration cache (config.rs), so a
    /// mapping change does not re-parse every certificate.
    static KEYS: RefCell<HashMap<(i64, String), Rc<TrustedKey>>> = RefCell::default();
}

const ACTIVE_CERTIFICATES: &str = "
    SELECT id, certificate, fingerprint_sha256, (extract(epoch FROM not_after) * 1000000)::bigint
      FROM saml_jit.idp_certificate
     WHERE idp_id = $1 AND active
     ORDER BY id";

/// Every active signing key of the IdP (all of them: rollover) with its
/// certificate's expiry; the caller filters by time (config.rs). A row whose
/// certificate does not parse is skipped: it can verify nothing.
pub fn active_keys(idp_id: i64) -> SpiResult<Vec<(Rc<TrustedKey>, DateTime<Utc>)>> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        for row in plans::select(client, ACTIVE_CERTIFICATES, None, &[idp_id.into()])? {
            let id: i64 = row.get(1)?.unwrap_or_default();
            let fingerprint: String = row.get(3)?.unwrap_or_default();
            let not_after = DateTime::from_timestamp_micros(row.get(4)?.unwrap_or(i64::MAX))
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            let cached = KEYS.with(|k| k.borrow().get(&(id, fingerprint.clone())).cloned());
            let key = match cached {
                Some(key) => key,
                None => {
                    let pem: String = row.get(2)?.unwrap_or_default();
                    let Ok(key) = TrustedKey::from_certificate_der(id, &der_of_pem(&pem)) else {
                        continue;
                    };
                    let key = Rc::new(key);
                    KEYS.with(|k| k.borrow_mut().insert((id, fingerprint), key.clone()));
                    key
                }
            };
            out.push((key, not_after));
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

const CONSUME_ASSERTION: &str = "
    INSERT INTO saml_jit.consumed_assertion (idp_id, assertion_id, valid_until)
    VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1";

/// Records the assertion as consumed. False when it already was (replay).
/// Two sessions racing on one assertion serialize on the primary key: the
/// second waits for the first to commit and then sees the conflict. (A
/// successful login does this inside its upsert statement; this serves the
/// refusals that must still say `replay` first.)
pub fn consume_assertion(
    idp_id: i64,
    assertion_id: &str,
    valid_until: DateTime<Utc>,
) -> SpiResult<bool> {
    Spi::connect_mut(|client| {
        let table = plans::update(
            client,
            CONSUME_ASSERTION,
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

/// The user as one login left it.
pub struct Provisioned {
    pub user_id: Uuid,
    pub created: bool,
    /// The stored values after this login (with sync = 'on_create' they may
    /// differ from this assertion's).
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub groups: Vec<String>,
    /// The row before and after this login, without `attributes`, when an
    /// existing user's audited values may have changed; None when nothing but
    /// the login bookkeeping moved (the usual returning login), when created,
    /// or when a concurrent session created the row a moment earlier (before
    /// is None then).
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    /// {"old": .., "new": ..} of `attributes` when this login changed them.
    pub attributes_change: Option<serde_json::Value>,
}

/// Outcome of the user upsert.
pub enum Upsert {
    Done(Box<Provisioned>),
    /// The assertion was consumed before: nothing this statement did stands.
    Replayed,
    Disabled,
    NotProvisioned,
}

/// What the login's audit rows carry besides the user: written by the upsert
/// statement itself ('login', and 'created' with the new row), so the row
/// images never travel to Rust and back as JSON.
pub struct LoginAudit<'a> {
    pub assertion_id: &'a str,
    /// Until when the assertion could be replayed (its replay row's lifetime).
    pub valid_until: DateTime<Utc>,
    pub client_addr: Option<String>,
    /// The 'login' row's detail (the action is added in SQL).
    pub login_detail: serde_json::Value,
    /// {"column": "attribute"}: where each mapped column came from.
    pub sources: serde_json::Value,
    /// The saml_jit.session row the login opens.
    pub session: NewSession,
}

/// A session as a login opens it (its ID is chosen by the login, so that
/// the 'login' audit row can name it).
pub struct NewSession {
    pub id: Uuid,
    pub session_index: Option<String>,
    pub name_id: Option<String>,
    pub not_on_or_after: Option<DateTime<Utc>>,
}

// The tail shared by both upsert statements: given CTEs `old` (the row before,
// locked, as `row`) and `up` (the row after: some columns, `created`, and
// the whole row as `row`), records the assertion against replay,
// writes the 'login' row and, for a new user, the 'created' row with the row
// image, in that order; then returns one row: whether the assertion was
// fresh, the stored values and, only when an existing user's row changed
// beyond the login bookkeeping, the images for the audit of what changed
// (all NULL when `up` wrote nothing: a disabled or unknown user). A replayed
// assertion's statement does its writes too; the login then raises and they
// roll back. Two sessions with one assertion serialize on the replay row's
// primary key: the second waits for the first to commit, then finds it.
// Parameters: idp id, subject, assertion ID, client address, login detail,
// sources, valid until, and the session's ID, SessionIndex, NameID and
// SessionNotOnOrAfter (the session row is written here too).
macro_rules! login_audit_tail {
    ($idp:literal, $subject:literal, $assertion:literal, $addr:literal, $login:literal, $sources:literal, $until:literal,
     $session:literal, $index:literal, $name_id:literal, $session_end:literal) => {
        concat!(
            "), consumed AS (
        INSERT INTO saml_jit.consumed_assertion (idp_id, assertion_id, valid_until)
        VALUES ($", $idp, ", $", $assertion, ", $", $until, ")
        ON CONFLICT DO NOTHING RETURNING 1
    ), session AS (
        INSERT INTO saml_jit.session (id, user_id, idp_id, session_index, name_id, not_on_or_after)
        SELECT $", $session, ", up.id, $", $idp, ", $", $index, ", $", $name_id, ", $", $session_end, "::timestamptz FROM up
    ), audit AS (
        INSERT INTO saml_jit.audit_log (event, idp_id, user_id, subject, assertion_id, client_addr, detail)
        SELECT e.event, $", $idp, ", up.id, $", $subject, ", $", $assertion, ", $", $addr, "::inet, e.detail
          FROM up CROSS JOIN LATERAL (VALUES
                 (1, 'login', $", $login, "::jsonb
                              || jsonb_build_object('action', CASE WHEN up.created THEN 'created' ELSE 'updated' END)),
                 (2, 'created', jsonb_build_object('user', to_jsonb(up.row) - 'attributes',
                                                   'sources', $", $sources, "::jsonb))
               ) AS e(ord, event, detail)
         WHERE e.ord = 1 OR up.created
         ORDER BY e.ord
    )
    SELECT EXISTS (SELECT FROM consumed), up.id, up.created, up.email, up.display_name, up.groups,
           CASE WHEN d.changed THEN to_jsonb(o.row) - 'attributes' END,
           CASE WHEN d.changed THEN to_jsonb(up.row) - 'attributes' END,
           CASE WHEN d.changed AND (o.row).attributes IS DISTINCT FROM up.attributes
                THEN jsonb_build_object('old', (o.row).attributes, 'new', up.attributes)
           END,
           up.first_name, up.last_name
      FROM (SELECT) AS one
      LEFT JOIN up ON true
      LEFT JOIN old o ON true
     -- An existing user's audited values may have moved only if updated_at
     -- did (both statements move it with every such change). It may also
     -- equal now() from an earlier change in this transaction: then the
     -- images are compared in Rust and nothing is reported. Row images
     -- cost a conversion of the whole row, so a returning user whose values
     -- stand pays none (~8 % of such a login).
     CROSS JOIN LATERAL (SELECT NOT up.created AND up.updated_at = now()) AS d(changed)"
        )
    };
}

// One statement: no read-then-write race between concurrent first logins.
// `old` locks and reads the row as it was (for the audit of what changed); the
// INSERT reads from it first so it is taken before the row changes (a FOR
// UPDATE evaluated after the same statement updated the row would skip it).
// A disabled user's row is left untouched (the WHERE makes it return nothing,
// and no audit row is written).
// $14..$24 say, per column, whether an existing user's value is overwritten
// (jit_update and the mapping's sync policy; $23 and $24 both for the
// attributes); $25 lists attributes keys that are imported once
// (sync = 'on_create').
const UPSERT_USER: &str = concat!(
    "
    WITH old AS MATERIALIZED (
        SELECT o AS row FROM saml_jit.users o
         WHERE o.idp_id = $1 AND o.subject = $2 FOR UPDATE
    ), up AS (
        INSERT INTO saml_jit.users AS u
               (idp_id, subject, name_id, name_id_format, email, first_name, last_name, display_name,
                title, organization, employee_number, groups, attributes, last_login_at, login_count,
                expires_at)
        SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, now(), 1, $26
          FROM (SELECT count(*) FROM old) AS old_first
        ON CONFLICT (idp_id, subject) DO UPDATE SET
               name_id = CASE WHEN $14 THEN EXCLUDED.name_id ELSE u.name_id END,
               name_id_format = CASE WHEN $14 THEN EXCLUDED.name_id_format ELSE u.name_id_format END,
               email = CASE WHEN $15 THEN EXCLUDED.email ELSE u.email END,
               first_name = CASE WHEN $16 THEN EXCLUDED.first_name ELSE u.first_name END,
               last_name = CASE WHEN $17 THEN EXCLUDED.last_name ELSE u.last_name END,
               display_name = CASE WHEN $18 THEN EXCLUDED.display_name ELSE u.display_name END,
               title = CASE WHEN $19 THEN EXCLUDED.title ELSE u.title END,
               organization = CASE WHEN $20 THEN EXCLUDED.organization ELSE u.organization END,
               employee_number = CASE WHEN $21 THEN EXCLUDED.employee_number ELSE u.employee_number END,
               groups = CASE WHEN $22 THEN EXCLUDED.groups ELSE u.groups END,
               -- (Without on_create keys, no merge: `||` copies the whole document.)
               attributes = CASE WHEN NOT $23 THEN u.attributes
                                 WHEN cardinality($25::text[]) = 0 THEN EXCLUDED.attributes
                                 ELSE EXCLUDED.attributes || (
                                     SELECT coalesce(jsonb_object_agg(k, u.attributes -> k), '{}')
                                       FROM unnest($25::text[]) k WHERE u.attributes ? k)
                            END,
               status = 'active',
               expires_at = CASE WHEN $27 THEN u.expires_at ELSE $26 END,
               -- Only when a stored value really changes (or the user is reactivated).
               updated_at = CASE WHEN ($14 AND (u.name_id, u.name_id_format)
                                              IS DISTINCT FROM (EXCLUDED.name_id, EXCLUDED.name_id_format))
                                   OR ($15 AND u.email IS DISTINCT FROM EXCLUDED.email)
                                   OR ($16 AND u.first_name IS DISTINCT FROM EXCLUDED.first_name)
                                   OR ($17 AND u.last_name IS DISTINCT FROM EXCLUDED.last_name)
                                   OR ($18 AND u.display_name IS DISTINCT FROM EXCLUDED.display_name)
                                   OR ($19 AND u.title IS DISTINCT FROM EXCLUDED.title)
                                   OR ($20 AND u.organization IS DISTINCT FROM EXCLUDED.organization)
                                   OR ($21 AND u.employee_number IS DISTINCT FROM EXCLUDED.employee_number)
                                   OR ($22 AND u.groups IS DISTINCT FROM EXCLUDED.groups)
                                   OR ($24 AND u.attributes IS DISTINCT FROM
                                           CASE WHEN cardinality($25::text[]) = 0 THEN EXCLUDED.attributes
                                                ELSE EXCLUDED.attributes || (
                                                    SELECT coalesce(jsonb_object_agg(k, u.attributes -> k), '{}')
                                                      FROM unnest($25::text[]) k WHERE u.attributes ? k)
                                           END)
                                   OR u.status <> 'active'
                                 THEN now() ELSE u.updated_at END,
               last_login_at = now(),
               login_count = u.login_count + 1
         WHERE u.status <> 'disabled'
        RETURNING u.id, (u.xmax = 0) AS created, u.email, u.display_name, u.groups, u.first_name,
                  u.last_name, u.attributes, u.updated_at, u AS row
    ",
    login_audit_tail!(1, 2, 28, 29, 30, 31, 32, 33, 34, 35, 36)
);

const UPDATE_EXISTING_ONLY: &str = concat!(
    "
    WITH old AS MATERIALIZED (
        SELECT o AS row FROM saml_jit.users o
         WHERE o.idp_id = $1 AND o.subject = $2 FOR UPDATE
    ), up AS (
        UPDATE saml_jit.users u SET last_login_at = now(), login_count = u.login_count + 1,
               status = 'active', expires_at = CASE WHEN $4 THEN u.expires_at ELSE $3 END,
               -- A reactivation changes the data, as in the upsert.
               updated_at = CASE WHEN u.status <> 'active' THEN now() ELSE u.updated_at END
          FROM (SELECT count(*) FROM old) AS old_first
         WHERE u.idp_id = $1 AND u.subject = $2 AND u.status <> 'disabled'
        RETURNING u.id, false AS created, u.email, u.display_name, u.groups, u.first_name,
                  u.last_name, u.attributes, u.updated_at, u AS row
    ",
    login_audit_tail!(1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13)
);

const USER_STATUS: &str = "SELECT status FROM saml_jit.users WHERE idp_id = $1 AND subject = $2";

pub fn upsert_user(
    idp: &IdpConfig,
    accepted: &Accepted,
    user: &UserRecord,
    expiry: &Expiry,
    audit: LoginAudit<'_>,
) -> SpiResult<Upsert> {
    let (expires_at, keep_expiry) = match expiry {
        Expiry::At(at) => (at.map(timestamptz), false),
        Expiry::Keep => (None, true),
    };
    let may = |column: &str| idp.jit_update && user.updates(column);
    let keep_keys: Vec<String> = user
        .on_create_only
        .iter()
        .filter_map(|t| t.strip_prefix("attributes.").map(str::to_string))
        .collect();
    let audit_args = || -> [DatumWithOid<'_>; 9] {
        [
            audit.assertion_id.into(),
            audit.client_addr.as_deref().into(),
            Jsonb::borrowed(&audit.login_detail).into(),
            Jsonb::borrowed(&audit.sources).into(),
            timestamptz(audit.valid_until).into(),
            audit.session.id.into(),
            audit.session.session_index.clone().into(),
            audit.session.name_id.clone().into(),
            audit.session.not_on_or_after.map(timestamptz).into(),
        ]
    };
    Spi::connect_mut(|client| {
        let table = if idp.jit_create {
            let mut args: Vec<DatumWithOid<'_>> = vec![
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
                Jsonb::borrowed(&user.attributes).into(),
                idp.jit_update.into(),
                may("email").into(),
                may("first_name").into(),
                may("last_name").into(),
                may("display_name").into(),
                may("title").into(),
                may("organization").into(),
                may("employee_number").into(),
                may("groups").into(),
                idp.jit_update.into(),
                idp.jit_update.into(),
                keep_keys.clone().into(),
                expires_at.into(),
                keep_expiry.into(),
            ];
            args.extend(audit_args());
            plans::update(client, UPSERT_USER, None, &args)?
        } else {
            let mut args: Vec<DatumWithOid<'_>> = vec![
                idp.id.into(),
                accepted.subject.as_str().into(),
                expires_at.into(),
                keep_expiry.into(),
            ];
            args.extend(audit_args());
            plans::update(client, UPDATE_EXISTING_ONLY, None, &args)?
        };
        let row = table.first();
        if !row.get::<bool>(1)?.unwrap_or(false) {
            return Ok(Upsert::Replayed);
        }
        if let Some(user_id) = row.get::<Uuid>(2)? {
            return Ok(Upsert::Done(Box::new(Provisioned {
                user_id,
                created: row.get(3)?.unwrap_or(false),
                email: row.get(4)?,
                display_name: row.get(5)?,
                groups: row.get(6)?.unwrap_or_default(),
                before: row.get::<JsonB>(7)?.map(|j| j.0),
                after: row.get::<JsonB>(8)?.map(|j| j.0),
                attributes_change: row.get::<JsonB>(9)?.map(|j| j.0),
                first_name: row.get(10)?,
                last_name: row.get(11)?,
            })));
        }
        let status: Option<String> = client
            .select(
                USER_STATUS,
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

// Each value becomes the group of the first matching rule (the IdP's own rules
// before those for all IdPs); unmatched values are kept or dropped per IdP.
const MAP_GROUPS: &str = "
    SELECT coalesce(
             (SELECT CASE WHEN g.is_regex THEN regexp_replace(v.value, g.value, g.group_name)
                          ELSE g.group_name END
                FROM saml_jit.group_mapping g
               WHERE (g.idp_id = $1 OR g.idp_id IS NULL)
                 AND CASE WHEN g.is_regex THEN v.value ~ g.value ELSE v.value = g.value END
               ORDER BY g.idp_id NULLS LAST, g.id
               LIMIT 1),
             CASE WHEN $3 THEN v.value END)
      FROM unnest($2::text[]) WITH ORDINALITY AS v(value, ord)
     ORDER BY v.ord";

const HAS_GROUP_RULES: &str =
    "SELECT EXISTS (SELECT 1 FROM saml_jit.group_mapping WHERE idp_id = $1 OR idp_id IS NULL)";

/// Whether any group_mapping rule applies to the IdP.
pub fn has_group_rules(idp_id: i64) -> SpiResult<bool> {
    Spi::connect(|client| {
        plans::select(client, HAS_GROUP_RULES, Some(1), &[idp_id.into()])?
            .first()
            .get_one::<bool>()
            .map(|b| b.unwrap_or(false))
    })
}

/// The IdP's group values through saml_jit.group_mapping (unchanged when no
/// rule exists and unmapped values are kept).
pub fn map_groups(idp: &IdpConfig, has_rules: bool, values: Vec<String>) -> SpiResult<Vec<String>> {
    Spi::connect(|client| {
        if !has_rules && idp.keep_unmapped_groups {
            return Ok(values);
        }
        let mut mapped = Vec::new();
        for row in plans::select(
            client,
            MAP_GROUPS,
            None,
            &[
                idp.id.into(),
                values.into(),
                idp.keep_unmapped_groups.into(),
            ],
        )? {
            if let Some(g) = row.get::<String>(1)? {
                mapped.push(xml_trim(&g).to_string());
            }
        }
        Ok(super::mapping::distinct(mapped.into_iter()))
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

const AUDIT_ROWS: &str = "
    INSERT INTO saml_jit.audit_log
           (event, reason, idp_id, user_id, subject, assertion_id, client_addr, detail)
    SELECT e, r, i, u, s, a, c::inet, d
      FROM unnest($1::text[], $2::text[], $3::bigint[], $4::uuid[], $5::text[], $6::text[],
                  $7::text[], $8::jsonb[]) AS t(e, r, i, u, s, a, c, d)";

/// Writes audit rows, all in one statement.
pub fn audit(entries: Vec<AuditEntry<'_>>) -> SpiResult<()> {
    let mut event = Vec::new();
    let mut reason = Vec::new();
    let mut idp = Vec::new();
    let mut user = Vec::new();
    let mut subject = Vec::new();
    let mut assertion = Vec::new();
    let mut addr = Vec::new();
    let mut detail = Vec::new();
    for e in entries {
        event.push(Some(e.event.to_string()));
        reason.push(e.reason.map(str::to_string));
        idp.push(e.idp_id);
        user.push(e.user_id);
        subject.push(e.subject.map(str::to_string));
        assertion.push(e.assertion_id.map(str::to_string));
        addr.push(e.client_addr);
        detail.push(Some(Jsonb::owned(e.detail)));
    }
    Spi::connect_mut(|client| {
        plans::update(
            client,
            AUDIT_ROWS,
            None,
            &[
                event.into(),
                reason.into(),
                idp.into(),
                user.into(),
                subject.into(),
                assertion.into(),
                addr.into(),
                detail.into(),
            ],
        )?;
        Ok(())
    })
}

const MAPPING_RULES: &str = "
    SELECT attribute, target, required, default_value, case_insensitive, multi_value, separator, sync
      FROM saml_jit.attribute_mapping
     WHERE idp_id = $1 OR idp_id IS NULL
     ORDER BY idp_id NULLS LAST, id";

/// The IdP's mapping rules, its own first, then those for all IdPs.
pub fn mapping_rules(idp_id: i64) -> SpiResult<Vec<MappingRule>> {
    Spi::connect(|client| {
        let mut rules = Vec::new();
        for row in plans::select(client, MAPPING_RULES, None, &[idp_id.into()])? {
            rules.push(MappingRule {
                attribute: row.get(1)?.unwrap_or_default(),
                target: row.get(2)?.unwrap_or_default(),
                required: row.get(3)?.unwrap_or(false),
                default_value: row.get(4)?,
                case_insensitive: row.get(5)?.unwrap_or(false),
                multi_value: row.get(6)?.unwrap_or_else(|| "first".into()),
                separator: row.get(7)?.unwrap_or_default(),
                sync: row.get(8)?.unwrap_or_else(|| "always".into()),
            });
        }
        Ok(rules)
    })
}

const SP_PRIVATE_KEYS: &str = "
    SELECT private_key FROM saml_jit.sp_key WHERE sp_id = $1
     ORDER BY state = 'current' DESC, state = 'next' DESC";

/// The SP's private keys (PEM): the current one first, then during a key
/// rollover the next and the previous one. Empty when none is installed.
pub fn sp_private_keys(sp_id: i64) -> SpiResult<Vec<String>> {
    Spi::connect(|client| {
        let mut keys = Vec::new();
        for row in plans::select(client, SP_PRIVATE_KEYS, None, &[sp_id.into()])? {
            keys.extend(row.get::<String>(1)?);
        }
        Ok(keys)
    })
}

/// What became of the AuthnRequest a response answers.
pub enum RequestState {
    /// Outstanding until now: consumed by this login; its RelayState.
    Answered(Option<String>),
    /// saml_jit never issued it (the application may track its own requests).
    Unknown,
    AlreadyAnswered(String),
    Expired(String),
}

const ANSWER_REQUEST: &str = "
    UPDATE saml_jit.authn_request SET consumed_at = now()
     WHERE request_id = $1 AND idp_id = $2 AND consumed_at IS NULL AND expires_at > $3
    RETURNING relay_state";

/// Consumes the outstanding request `request_id` of the IdP. Two responses to
/// one request serialize on its row: the second finds it answered.
pub fn consume_request(
    idp_id: i64,
    request_id: &str,
    now: DateTime<Utc>,
) -> SpiResult<RequestState> {
    Spi::connect_mut(|client| {
        let answered = plans::update(
            client,
            ANSWER_REQUEST,
            None,
            &[request_id.into(), idp_id.into(), timestamptz(now).into()],
        )?;
        if let Some(row) = answered.into_iter().next() {
            return Ok(RequestState::Answered(row.get(1)?));
        }
        let found = client.select(
            "SELECT consumed_at::text, expires_at::text FROM saml_jit.authn_request
              WHERE request_id = $1 AND idp_id = $2",
            Some(1),
            &[request_id.into(), idp_id.into()],
        )?;
        let Some(row) = found.into_iter().next() else {
            return Ok(RequestState::Unknown);
        };
        Ok(match row.get::<String>(1)? {
            Some(at) => RequestState::AlreadyAnswered(at),
            None => RequestState::Expired(row.get::<String>(2)?.unwrap_or_default()),
        })
    })
}

const HOOK_PROBLEM: &str = "SELECT saml_jit.hook_problem($1::regprocedure)";

/// What stops `hook` from being called now (sql/jit.sql), or None.
pub fn hook_problem(hook: pg_sys::Oid) -> SpiResult<Option<String>> {
    Spi::connect(|client| {
        plans::select(client, HOOK_PROBLEM, Some(1), &[hook.into()])?
            .first()
            .get_one::<String>()
    })
}

/// Read-only probes for saml_jit_explain.
pub mod probe {
    use super::*;

    pub fn assertion_consumed(idp_id: i64, assertion_id: &str) -> SpiResult<bool> {
        Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM saml_jit.consumed_assertion WHERE idp_id = $1 AND assertion_id = $2)",
            &[idp_id.into(), assertion_id.into()],
        )
        .map(|b| b.unwrap_or(false))
    }

    /// "outstanding", "answered at ...", "expired at ..." or None (unknown).
    pub fn request_state(
        idp_id: i64,
        request_id: &str,
        now: DateTime<Utc>,
    ) -> SpiResult<Option<String>> {
        Spi::get_one_with_args::<String>(
            "SELECT CASE WHEN consumed_at IS NOT NULL THEN 'answered at ' || consumed_at
                         WHEN expires_at <= $3 THEN 'expired at ' || expires_at
                         ELSE 'outstanding' END
               FROM saml_jit.authn_request WHERE request_id = $1 AND idp_id = $2",
            &[request_id.into(), idp_id.into(), timestamptz(now).into()],
        )
        .or_else(|e| match e {
            pgrx::spi::SpiError::InvalidPosition => Ok(None),
            e => Err(e),
        })
    }

    /// The hook as `schema.name(jsonb)` (its OID when it no longer exists).
    pub fn function_name(oid: pg_sys::Oid) -> SpiResult<String> {
        Spi::get_one_with_args::<String>("SELECT $1::regprocedure::text", &[oid.into()])
            .map(|s| s.unwrap_or_default())
    }

    pub fn user_row(idp_id: i64, subject: &str) -> SpiResult<Option<serde_json::Value>> {
        Spi::get_one_with_args::<JsonB>(
            "SELECT to_jsonb(u) FROM saml_jit.users u WHERE u.idp_id = $1 AND u.subject = $2",
            &[idp_id.into(), subject.into()],
        )
        .map(|j| j.map(|j| j.0))
        .or_else(|e| match e {
            pgrx::spi::SpiError::InvalidPosition => Ok(None),
            e => Err(e),
        })
    }
}
