//! What a login changed on an existing user, for the audit log: each changed
//! column with its old and new value and the SAML attribute it came from, and
//! the groups added and removed. Pure Rust over the row images as JSON.

use serde_json::{json, Map, Value};

use super::mapping::COLUMNS;

/// Columns whose changes are audited: the NameID, every mapped column, the status.
fn audited() -> impl Iterator<Item = &'static str> {
    std::iter::once("name_id")
        .chain(COLUMNS)
        .chain(std::iter::once("status"))
}

/// Changed columns: {"title": {"old": .., "new": .., "attribute": ..}}.
pub fn changed_columns(
    before: &Value,
    after: &Value,
    sources: &[(String, String)],
) -> Map<String, Value> {
    let mut out = Map::new();
    for column in audited() {
        let (old, new) = (&before[column], &after[column]);
        if old == new {
            continue;
        }
        let attribute = sources
            .iter()
            .find(|(c, _)| c == column)
            .map(|(_, a)| a.clone());
        out.insert(
            column.to_string(),
            json!({"old": old, "new": new, "attribute": attribute}),
        );
    }
    out
}

/// The keys of `attributes` whose values differ: {"key": {"old": .., "new": ..}}.
pub fn attribute_changes(old: &Value, new: &Value) -> Map<String, Value> {
    let empty = Map::new();
    let (o, n) = (
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
    );
    let mut out = Map::new();
    for key in o.keys().chain(n.keys()) {
        let (a, b) = (
            o.get(key).unwrap_or(&Value::Null),
            n.get(key).unwrap_or(&Value::Null),
        );
        if a != b && !out.contains_key(key) {
            out.insert(key.clone(), json!({"old": a, "new": b}));
        }
    }
    out
}

/// (added, removed) between two `groups` arrays.
pub fn group_changes(before: &Value, after: &Value) -> (Vec<String>, Vec<String>) {
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|g| g.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (old, new) = (list(before), list(after));
    let added = new.iter().filter(|g| !old.contains(g)).cloned().collect();
    let removed = old.iter().filter(|g| !new.contains(g)).cloned().collect();
    (added, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_only_what_changed_with_its_source() {
        let before = json!({"title": "Analyst", "email": "a@x", "groups": ["staff", "old"], "login_count": 1});
        let after =
            json!({"title": "Lead", "email": "a@x", "groups": ["staff", "new"], "login_count": 2});
        let sources = vec![("title".to_string(), "urn:oid:2.5.4.12".to_string())];
        let changes = changed_columns(&before, &after, &sources);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(
            changes["title"],
            json!({"old": "Analyst", "new": "Lead", "attribute": "urn:oid:2.5.4.12"})
        );
        let (added, removed) = group_changes(&before["groups"], &after["groups"]);
        assert_eq!(
            (added, removed),
            (vec!["new".to_string()], vec!["old".to_string()])
        );
    }
}
