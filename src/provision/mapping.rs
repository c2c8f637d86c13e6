//! Attribute mapping: signed SAML attributes to the columns of saml_jit.users.
//! Pure Rust. Until table-driven mappings exist, the built-in defaults cover
//! the names enterprise IdPs send (LDAP names, their urn:oid forms, and the
//! ADFS / Entra ID claim URIs).

use serde_json::{Map, Value};

use crate::saml::extract::Attribute;
use crate::saml::text::xml_trim;
use crate::saml::{reject, Reason, Reject};

/// A row of saml_jit.attribute_mapping.
#[derive(Debug, Clone)]
pub struct MappingRule {
    pub attribute: String,
    pub target: String,
    pub required: bool,
    pub default_value: Option<String>,
    pub case_insensitive: bool,
    /// "first", "join" or "reject" (single-valued targets).
    pub multi_value: String,
    pub separator: String,
    /// "always" or "on_create".
    pub sync: String,
}

impl MappingRule {
    /// A rule with the table's defaults.
    pub fn new(attribute: &str, target: &str) -> MappingRule {
        MappingRule {
            attribute: attribute.into(),
            target: target.into(),
            required: false,
            default_value: None,
            case_insensitive: false,
            multi_value: "first".into(),
            separator: ", ".into(),
            sync: "always".into(),
        }
    }

    fn matches(&self, a: &Attribute) -> bool {
        let eq = |x: &str| {
            if self.case_insensitive {
                x.eq_ignore_ascii_case(&self.attribute)
            } else {
                x == self.attribute
            }
        };
        eq(&a.name) || a.friendly_name.as_deref().is_some_and(eq)
    }
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
    /// Every attribute as signed: {"Name": ["value", ...]}, plus the keys
    /// that `attributes.<key>` rules fill.
    pub attributes: Value,
    /// Which SAML attribute each mapped column came from (for the audit).
    pub sources: Vec<(String, String)>,
    /// Columns that are written at creation only (sync = 'on_create').
    pub on_create_only: Vec<String>,
}

/// The users columns a mapping can fill.
pub const COLUMNS: [&str; 8] = [
    "email",
    "first_name",
    "last_name",
    "display_name",
    "title",
    "organization",
    "employee_number",
    "groups",
];

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
fn first_value(attributes: &[Attribute], names: &[&str]) -> Option<(String, String)> {
    names.iter().find_map(|name| {
        attributes
            .iter()
            .filter(|a| matches(a, name))
            .find_map(|a| {
                a.values
                    .iter()
                    .map(|v| xml_trim(v))
                    .find(|v| !v.is_empty())
                    .map(|v| (v.to_string(), a.name.clone()))
            })
    })
}

/// Non-empty values, first occurrence kept, in order. (A hash set: group
/// lists of hundreds of values are common, and a linear scan per value
/// showed up in profiles.)
pub fn distinct(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    values
        .filter(|v| !v.is_empty() && seen.insert(v.clone()))
        .collect()
}

/// Applies the built-in default mapping.
pub fn default_mapping(attributes: &[Attribute]) -> UserRecord {
    let groups = distinct(
        attributes
            .iter()
            .filter(|a| GROUPS.iter().any(|g| matches(a, g)))
            .flat_map(|a| a.values.iter().map(|v| xml_trim(v).to_string())),
    );
    let mut all = Map::new();
    for a in attributes {
        all.insert(
            a.name.clone(),
            Value::Array(a.values.iter().cloned().map(Value::String).collect()),
        );
    }
    let mut sources = Vec::new();
    let mut pick = |column: &str, names: &[&str]| {
        first_value(attributes, names).map(|(value, source)| {
            sources.push((column.to_string(), source));
            value
        })
    };
    let mut user = UserRecord {
        email: pick("email", EMAIL),
        first_name: pick("first_name", FIRST_NAME),
        last_name: pick("last_name", LAST_NAME),
        display_name: pick("display_name", DISPLAY_NAME),
        title: pick("title", TITLE),
        organization: pick("organization", ORGANIZATION),
        employee_number: pick("employee_number", EMPLOYEE_NUMBER),
        groups,
        attributes: Value::Object(all),
        sources: Vec::new(),
        on_create_only: Vec::new(),
    };
    if let Some(a) = attributes
        .iter()
        .find(|a| GROUPS.iter().any(|g| matches(a, g)))
    {
        sources.push(("groups".into(), a.name.clone()));
    }
    user.sources = sources;
    user
}

impl UserRecord {
    fn slot(&mut self, column: &str) -> Option<&mut Option<String>> {
        Some(match column {
            "email" => &mut self.email,
            "first_name" => &mut self.first_name,
            "last_name" => &mut self.last_name,
            "display_name" => &mut self.display_name,
            "title" => &mut self.title,
            "organization" => &mut self.organization,
            "employee_number" => &mut self.employee_number,
            _ => return None,
        })
    }

    fn set_source(&mut self, column: &str, attribute: Option<&str>) {
        self.sources.retain(|(c, _)| c != column);
        if let Some(a) = attribute {
            self.sources.push((column.to_string(), a.to_string()));
        }
    }

    /// Whether a login may overwrite `column` of an existing user.
    pub fn updates(&self, column: &str) -> bool {
        !self.on_create_only.iter().any(|c| c == column)
    }
}

/// The built-in defaults, then the IdP's rules: a target named by a rule is
/// filled from that rule's attribute only (the built-in names no longer apply
/// to it); targets without a rule keep the defaults. Rules come ordered: the
/// IdP's own before those for all IdPs, so the first rule of a target wins.
pub fn map_attributes(
    attributes: &[Attribute],
    rules: &[MappingRule],
) -> Result<UserRecord, Reject> {
    let mut user = default_mapping(attributes);
    let mut ruled: Vec<&str> = Vec::new();
    for rule in rules {
        let source = attributes.iter().find(|a| rule.matches(a));
        let mut values: Vec<String> = attributes
            .iter()
            .filter(|a| rule.matches(a))
            .flat_map(|a| a.values.iter())
            .map(|v| xml_trim(v).to_string())
            .filter(|v| !v.is_empty())
            .collect();
        if values.is_empty() {
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
            values.extend(rule.default_value.iter().cloned());
        }
        let first_for_target = !ruled.contains(&rule.target.as_str());
        if !first_for_target {
            continue;
        }
        ruled.push(&rule.target);
        if rule.sync == "on_create" {
            user.on_create_only.push(rule.target.clone());
        }
        if let Some(key) = rule.target.strip_prefix("attributes.") {
            if let Value::Object(map) = &mut user.attributes {
                map.insert(
                    key.to_string(),
                    Value::Array(values.into_iter().map(Value::String).collect()),
                );
            }
            continue;
        }
        user.set_source(&rule.target, source.map(|a| a.name.as_str()));
        if rule.target == "groups" {
            user.groups = distinct(values.into_iter());
            continue;
        }
        let value = match (values.len(), rule.multi_value.as_str()) {
            (0, _) => None,
            (1, _) | (_, "first") => values.into_iter().next(),
            (_, "join") => Some(values.join(&rule.separator)),
            (n, _) => {
                return Err(reject(
                    Reason::RequiredAttributeMissing,
                    format!(
                        "the attribute {:?} (mapped to {}) must carry exactly one value but carries {n}; \
                         the mapping says multi_value = 'reject' ('first' or 'join' would accept it)",
                        rule.attribute, rule.target
                    ),
                ))
            }
        };
        if let Some(slot) = user.slot(&rule.target) {
            *slot = value;
        }
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
            required,
            default_value: default.map(Into::into),
            ..MappingRule::new(attribute, target)
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

    #[test]
    fn multi_value_case_and_sync_policies() {
        let attrs = vec![
            attr("Department", None, &["R&D", "Math"]),
            attr("costCenter", None, &["42"]),
        ];
        let join = MappingRule {
            multi_value: "join".into(),
            separator: " / ".into(),
            case_insensitive: true,
            ..MappingRule::new("department", "organization")
        };
        let u = map_attributes(&attrs, std::slice::from_ref(&join)).unwrap();
        assert_eq!(u.organization.as_deref(), Some("R&D / Math"));
        assert!(u
            .sources
            .contains(&("organization".into(), "Department".into())));
        let strict = MappingRule {
            multi_value: "reject".into(),
            ..join.clone()
        };
        let err = map_attributes(&attrs, &[strict]).unwrap_err();
        assert!(err.detail.contains("exactly one value"), "{}", err.detail);
        let exact_case = MappingRule {
            case_insensitive: false,
            ..join
        };
        assert_eq!(
            map_attributes(&attrs, &[exact_case]).unwrap().organization,
            None
        );
        let once = MappingRule {
            sync: "on_create".into(),
            ..MappingRule::new("costCenter", "attributes.cost_center")
        };
        let u = map_attributes(&attrs, &[once]).unwrap();
        assert_eq!(u.attributes["cost_center"], serde_json::json!(["42"]));
        assert!(!u.updates("attributes.cost_center"));
        assert!(u.updates("email"));
    }
}
