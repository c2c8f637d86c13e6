//! Attribute mapping: signed SAML attributes to the columns of saml_jit.users.
//! Pure Rust. Until table-driven mappings exist, the built-in defaults cover
//! the names enterprise IdPs send (LDAP names, their urn:oid forms, and the
//! ADFS / Entra ID claim URIs).

use serde_json::{Map, Value};

use crate::saml::extract::Attribute;
use crate::saml::{reject, Reason, Reject};

/// A row of saml_jit.attribute_mapping.
#[derive(Debug, Clone)]
pub struct MappingRule {
    pub attribute: String,
    pub target: String,
    pub required: bool,
    pub default_value: Option<String>,
}

/// The user row values a login writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserRecord {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: Option<String>,
    pub title: Option<String>,
    pub organization: Option<String>,
    pub employee_number: Option<String>,
    pub groups: Vec<String>,
    /// Every attribute as signed: {"Name": ["value", ...]}.
    pub attributes: Value,
}

const EMAIL: &[&str] = &[
    "mail",
    "email",
    "emailAddress",
    "urn:oid:0.9.2342.19200300.100.1.3",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "http://schemas.xmlsoap.org/claims/EmailAddress",
];
const FIRST_NAME: &[&str] = &[
    "givenName",
    "firstName",
    "urn:oid:2.5.4.42",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
];
const LAST_NAME: &[&str] = &[
    "sn",
    "surname",
    "lastName",
    "urn:oid:2.5.4.4",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
];
const DISPLAY_NAME: &[&str] = &[
    "displayName",
    "urn:oid:2.16.840.1.113730.3.1.241",
    "http://schemas.microsoft.com/identity/claims/displayname",
    "cn",
    "urn:oid:2.5.4.3",
    "http://schemas.xmlsoap.org/claims/CommonName",
];
const TITLE: &[&str] = &["title", "jobTitle", "urn:oid:2.5.4.12"];
const ORGANIZATION: &[&str] = &["o", "organization", "organizationName", "urn:oid:2.5.4.10"];
const EMPLOYEE_NUMBER: &[&str] = &[
    "employeeNumber",
    "urn:oid:2.16.840.1.113730.3.1.3",
    "employeeID",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/employeeid",
];
const GROUPS: &[&str] = &[
    "groups",
    "role",
    "memberOf",
    "isMemberOf",
    "urn:oid:1.3.6.1.4.1.5923.1.5.1.1",
    "urn:oid:1.2.840.113556.1.2.102",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
    "http://schemas.xmlsoap.org/claims/Group",
];

fn matches(attribute: &Attribute, name: &str) -> bool {
    attribute.name == name || attribute.friendly_name.as_deref() == Some(name)
}

/// The first non-empty value of the first attribute named in `names`
/// (the list is in priority order).
fn first_value(attributes: &[Attribute], names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| {
        attributes
            .iter()
            .filter(|a| matches(a, name))
            .flat_map(|a| a.values.iter())
            .map(|v| v.trim())
            .find(|v| !v.is_empty())
            .map(str::to_string)
    })
}

/// Applies the built-in default mapping.
pub fn default_mapping(attributes: &[Attribute]) -> UserRecord {
    let mut groups: Vec<String> = Vec::new();
    for a in attributes
        .iter()
        .filter(|a| GROUPS.iter().any(|g| matches(a, g)))
    {
        for v in a.values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
            if !groups.iter().any(|g| g == v) {
                groups.push(v.to_string());
            }
        }
    }
    let mut all = Map::new();
    for a in attributes {
        all.insert(
            a.name.clone(),
            Value::Array(a.values.iter().cloned().map(Value::String).collect()),
        );
    }
    UserRecord {
        email: first_value(attributes, EMAIL),
        first_name: first_value(attributes, FIRST_NAME),
        last_name: first_value(attributes, LAST_NAME),
        display_name: first_value(attributes, DISPLAY_NAME),
        title: first_value(attributes, TITLE),
        organization: first_value(attributes, ORGANIZATION),
        employee_number: first_value(attributes, EMPLOYEE_NUMBER),
        groups,
        attributes: Value::Object(all),
    }
}

/// The built-in defaults, then the IdP's rules: a target named by a rule is
/// filled from that rule's attribute only (the built-in names no longer apply
/// to it); targets without a rule keep the defaults.
pub fn map_attributes(
    attributes: &[Attribute],
    rules: &[MappingRule],
) -> Result<UserRecord, Reject> {
    let mut user = default_mapping(attributes);
    let mut ruled_groups: Option<Vec<String>> = None;
    let mut seen_targets: Vec<&str> = Vec::new();
    for rule in rules {
        let values: Vec<String> = attributes
            .iter()
            .filter(|a| matches(a, &rule.attribute))
            .flat_map(|a| a.values.iter())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        let values = if values.is_empty() {
            if rule.required {
                return Err(reject(
                    Reason::RequiredAttributeMissing,
                    format!(
                        "the attribute {:?} (mapped to {}) is required by saml_jit.attribute_mapping, \
                         but the assertion does not carry it or it is empty; ask the IdP to release it",
                        rule.attribute, rule.target
                    ),
                ));
            }
            rule.default_value.iter().cloned().collect()
        } else {
            values
        };
        let first_rule_for_target = !seen_targets.contains(&rule.target.as_str());
        seen_targets.push(&rule.target);
        if rule.target == "groups" {
            let groups = ruled_groups.get_or_insert_with(Vec::new);
            for v in values {
                if !groups.contains(&v) {
                    groups.push(v);
                }
            }
            continue;
        }
        let slot = match rule.target.as_str() {
            "email" => &mut user.email,
            "first_name" => &mut user.first_name,
            "last_name" => &mut user.last_name,
            "display_name" => &mut user.display_name,
            "title" => &mut user.title,
            "organization" => &mut user.organization,
            "employee_number" => &mut user.employee_number,
            // The table's CHECK constraint admits no other target.
            _ => continue,
        };
        if first_rule_for_target {
            *slot = None;
        }
        if slot.is_none() {
            *slot = values.into_iter().next();
        }
    }
    if let Some(groups) = ruled_groups {
        user.groups = groups;
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(name: &str, friendly: Option<&str>, values: &[&str]) -> Attribute {
        Attribute {
            name: name.into(),
            friendly_name: friendly.map(Into::into),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn maps_ldap_oid_and_claim_names() {
        let attrs = vec![
            attr(
                "urn:oid:0.9.2342.19200300.100.1.3",
                Some("mail"),
                &["ada@example.com"],
            ),
            attr(
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
                None,
                &["Ada"],
            ),
            attr("sn", None, &["Lovelace"]),
            attr("cn", None, &["Ada Lovelace"]),
            attr("role", None, &["admin", "staff"]),
            attr("memberOf", None, &["staff", "engineering"]),
            attr("employeeNumber", None, &[" 1815 "]),
        ];
        let u = default_mapping(&attrs);
        assert_eq!(u.email.as_deref(), Some("ada@example.com"));
        assert_eq!(u.first_name.as_deref(), Some("Ada"));
        assert_eq!(u.last_name.as_deref(), Some("Lovelace"));
        assert_eq!(u.display_name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(u.employee_number.as_deref(), Some("1815"));
        assert_eq!(u.groups, vec!["admin", "staff", "engineering"]);
        assert_eq!(u.attributes["role"], serde_json::json!(["admin", "staff"]));
        assert_eq!(u.title, None);
    }

    fn rule(attribute: &str, target: &str, required: bool, default: Option<&str>) -> MappingRule {
        MappingRule {
            attribute: attribute.into(),
            target: target.into(),
            required,
            default_value: default.map(Into::into),
        }
    }

    #[test]
    fn rules_override_their_target_and_keep_the_rest() {
        let attrs = vec![
            attr("mail", None, &["ada@example.com"]),
            attr("upn", None, &["ada@corp.example"]),
            attr("dept", None, &["R&D", "Math"]),
            attr("role", None, &["admin"]),
        ];
        let rules = vec![
            rule("upn", "email", true, None),
            rule("dept", "groups", false, None),
            rule("costCenter", "organization", false, Some("none")),
        ];
        let u = map_attributes(&attrs, &rules).unwrap();
        assert_eq!(u.email.as_deref(), Some("ada@corp.example"));
        assert_eq!(
            u.groups,
            vec!["R&D", "Math"],
            "a groups rule replaces the default groups"
        );
        assert_eq!(u.organization.as_deref(), Some("none"));
        let missing = map_attributes(
            &attrs,
            &[rule("employeeNumber", "employee_number", true, None)],
        );
        let err = missing.unwrap_err();
        assert_eq!(err.code(), "required_attribute_missing");
        assert!(err.detail.contains("employeeNumber"));
    }
}
