//! saml_jit_explain: everything saml_jit_login would check, one row per
//! check, and the user row changes it would make, without writing anything.
//! The tool an administrator uses when a customer's IdP is misconfigured.

use pgrx::prelude::*;
use serde_json::{json, Value};

use crate::gucs;
use crate::pg::raise;
use crate::provision::changes::{changed_columns, group_changes};
use crate::provision::config;
use crate::provision::entitle::{check_email, check_groups};
use crate::provision::expiry::{expiry, Expiry};
use crate::provision::mapping::map_attributes;
use crate::provision::store::{self, probe};
use crate::saml::decrypt::SpKey;
use crate::saml::response::{receive, verify};
use crate::saml::validate::{self, Inputs, CHECKS};
use crate::saml::Reject;

/// The report being built: (step, outcome, detail) rows.
struct Report {
    rows: Vec<(String, String, String)>,
    first_failure: Option<&'static str>,
}

impl Report {
    fn row(&mut self, step: &str, outcome: &str, detail: impl Into<String>) {
        self.rows.push((step.into(), outcome.into(), detail.into()));
    }

    fn outcome(&mut self, step: &str, result: &Result<(), Reject>, passed: impl Into<String>) {
        match result {
            Ok(()) => self.row(step, "pass", passed),
            Err(r) => {
                self.first_failure.get_or_insert(r.code());
                self.row(step, &format!("fail: {}", r.code()), r.detail.clone());
            }
        }
    }

    fn stop(mut self, step: &str, r: &Reject) -> Self {
        self.outcome(step, &Err(r.clone()), "");
        self
    }
}

/// Runs every check of saml_jit_login on `response` and reports each, plus
/// the user changes a login would make. Writes nothing (no replay row, no
/// user, no audit row).
#[pg_extern(stable, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn saml_jit_explain(
    response: &str,
    in_response_to: default!(Option<&str>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(step, String),
        name!(outcome, String),
        name!(detail, String),
    ),
> {
    let report = explain(response, in_response_to).unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("saml_jit: database error: {e}"),
            None,
            None,
        )
    });
    TableIterator::new(report.rows)
}

fn explain(response: &str, in_response_to: Option<&str>) -> pgrx::spi::SpiResult<Report> {
    let mut report = Report {
        rows: Vec::new(),
        first_failure: None,
    };
    let now = match gucs::now() {
        Ok(now) => now,
        Err(e) => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            e,
            None,
            None,
        ),
    };
    report.row(
        "clock",
        "info",
        format!("checks use {}", crate::saml::time::show(now)),
    );
    let incoming = match receive(response, gucs::max_response_bytes()) {
        Ok(i) => i,
        Err(r) => return Ok(finish(report.stop("decode", &r))),
    };
    report.row(
        "decode",
        "pass",
        format!(
            "a samlp:Response naming the Issuer {:?}",
            incoming.claimed_issuer
        ),
    );
    // The same view of the configuration as saml_jit_login (its cache).
    let Some(snapshot) = config::idp(&incoming.claimed_issuer)? else {
        let r = crate::saml::reject(
            crate::saml::Reason::UnknownIssuer,
            format!("no trusted IdP has entity ID {:?}", incoming.claimed_issuer),
        );
        return Ok(finish(report.stop("idp", &r)));
    };
    let idp = &snapshot.config;
    let idp_state = if idp.enabled {
        Ok(())
    } else {
        Err(crate::saml::reject(
            crate::saml::Reason::IdpDisabled,
            "identity_provider.enabled = false",
        ))
    };
    report.outcome(
        "idp",
        &idp_state,
        format!(
            "trusted IdP #{} for SP {:?}",
            idp.id, idp.policy.sp_entity_id
        ),
    );
    let keys = snapshot.trusted_keys(now);
    report.row(
        "certificates",
        "info",
        format!("{} active signing certificate(s) will be tried", keys.len()),
    );
    let sp_key = if incoming.is_encrypted() {
        Some(store::sp_private_keys(idp.sp_id)?)
            .filter(|pems| !pems.is_empty())
            .and_then(|pems| SpKey::from_pems(&pems).ok())
    } else {
        None
    };
    let verified = match verify(&incoming, &keys, idp.policy.allow_sha1, sp_key.as_ref()) {
        Ok(v) => v,
        Err(r) => return Ok(finish(report.stop("signature", &r))),
    };
    let signed = |s: &Option<crate::saml::verify::VerifiedSignature>| {
        s.as_ref()
            .map(|s| {
                format!(
                    "signed ({}, {}, certificate #{})",
                    s.signature_algorithm, s.digest_algorithm, s.certificate_id
                )
            })
            .unwrap_or_else(|| "unsigned".into())
    };
    report.row(
        "signature",
        "pass",
        format!(
            "Response {}; Assertion {}",
            signed(&verified.response_signature),
            signed(&verified.assertion_signature)
        ),
    );
    // What the signed assertion answers, as the login judges it.
    let request = verified.assertion.answered_request().map(str::to_string);
    if let Some(id) = &request {
        let state = probe::request_state(idp.id, id, now)?;
        let ok = match (&state, in_response_to) {
            (Some(s), _) if s == "outstanding" => Ok(()),
            (None, Some(_)) => Ok(()),
            _ => Err(crate::saml::reject(
                crate::saml::Reason::InResponseToMismatch,
                format!(
                    "request {id:?}: {}",
                    state
                        .clone()
                        .unwrap_or_else(|| "never sent by saml_jit_authn_request".into())
                ),
            )),
        };
        report.outcome(
            "request",
            &ok,
            format!(
                "answers request {id:?} ({})",
                state.unwrap_or_else(|| "tracked by the application".into())
            ),
        );
    }
    let irt = in_response_to.or(request.as_deref());
    let inputs = Inputs {
        envelope: &verified.envelope,
        assertion: &verified.assertion,
        policy: &idp.policy,
        now,
        in_response_to: irt,
    };
    for (name, check) in CHECKS {
        report.outcome(name, &check(&inputs), "");
    }
    let replay = if probe::assertion_consumed(idp.id, &verified.assertion.id)? {
        Err(crate::saml::reject(
            crate::saml::Reason::Replay,
            "this assertion ID was already used",
        ))
    } else {
        Ok(())
    };
    report.outcome(
        "replay",
        &replay,
        format!("assertion {:?} not used before", verified.assertion.id),
    );
    let Ok(accepted) = validate::validate(
        &verified.envelope,
        &verified.assertion,
        &idp.policy,
        now,
        irt,
    ) else {
        return Ok(finish(report));
    };
    let user = match map_attributes(&accepted.attributes, &snapshot.mapping_rules) {
        Ok(mut u) => {
            u.groups =
                store::map_groups(idp, snapshot.has_group_rules, std::mem::take(&mut u.groups))?;
            u
        }
        Err(r) => return Ok(finish(report.stop("mapping", &r))),
    };
    let mapped = json!({
        "email": user.email, "first_name": user.first_name, "last_name": user.last_name,
        "display_name": user.display_name, "title": user.title, "organization": user.organization,
        "employee_number": user.employee_number, "groups": user.groups, "name_id": accepted.name_id,
        "attributes": user.attributes,
    });
    report.row("mapping", "pass", mapped.to_string());
    let email = check_email(user.email.as_deref(), idp.email_domains.as_deref());
    let email_passed = match &idp.email_domains {
        None => "no email_domains: nothing refused, email_verified = false".to_string(),
        Some(domains) => format!(
            "{:?} is in {}: email_verified = true",
            user.email.as_deref().unwrap_or_default(),
            domains.join(", ")
        ),
    };
    report.outcome("email_domain", &email.map(|_| ()), email_passed);
    let entitled_passed = match &idp.required_groups {
        None => "no required_groups".to_string(),
        Some(required) => format!("holds one of {required:?}"),
    };
    report.outcome(
        "entitlement",
        &check_groups(&user.groups, idp.required_groups.as_deref()),
        entitled_passed,
    );
    match idp.hook {
        None => report.row("hook", "info", "no on_login hook"),
        Some(hook) => {
            let problem = store::hook_problem(hook)?;
            let name = probe::function_name(hook)?;
            let state = match problem {
                None => Ok(()),
                Some(p) => Err(crate::saml::reject(
                    crate::saml::Reason::ProvisioningRefused,
                    format!("the on_login hook cannot be called: {p}"),
                )),
            };
            report.outcome(
                "hook",
                &state,
                format!("would call {name} (not called by explain: its verdict is unknown here)"),
            );
        }
    }
    match expiry(&idp.expiry, &accepted.attributes, now) {
        Ok(Expiry::At(at)) => report.row(
            "expiry",
            "pass",
            format!(
                "expires_at = {}",
                at.map(crate::saml::time::show)
                    .unwrap_or_else(|| "none".into())
            ),
        ),
        Ok(Expiry::Keep) => report.row("expiry", "pass", "expires_at kept as it is"),
        Err(r) => report.outcome("expiry", &Err(r), ""),
    }
    let existing = probe::user_row(idp.id, &accepted.subject)?;
    let plan = match &existing {
        None if !idp.jit_create => Err(crate::saml::reject(
            crate::saml::Reason::ProvisioningDisabled,
            format!(
                "{:?} does not exist and jit_create = false",
                accepted.subject
            ),
        )),
        None => Ok(format!("would create user {:?}", accepted.subject)),
        Some(row) if row["status"] == "disabled" => Err(crate::saml::reject(
            crate::saml::Reason::UserDisabled,
            format!("{:?} is disabled", accepted.subject),
        )),
        Some(row) => {
            let mut after = row.clone();
            if idp.jit_update {
                for (k, v) in mapped.as_object().expect("object") {
                    if user.updates(k) {
                        after[k] = v.clone();
                    }
                }
            }
            after["status"] = Value::from("active");
            let changes = changed_columns(row, &after, &user.sources);
            let (added, removed) = group_changes(&row["groups"], &after["groups"]);
            Ok(format!(
                "would update user {:?}: {}",
                accepted.subject,
                json!({"changes": changes, "groups_added": added, "groups_removed": removed})
            ))
        }
    };
    match plan {
        Ok(text) => report.row("user", "pass", text),
        Err(r) => report.outcome("user", &Err(r), ""),
    }
    Ok(finish(report))
}

fn finish(mut report: Report) -> Report {
    let verdict = match report.first_failure {
        None => (
            "accept".to_string(),
            "saml_jit_login would accept this response".to_string(),
        ),
        Some(code) => (
            format!("reject: {code}"),
            format!("saml_jit_login would raise: SAML response rejected: {code}"),
        ),
    };
    report.rows.push(("result".into(), verdict.0, verdict.1));
    report
}
