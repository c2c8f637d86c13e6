//! xs:dateTime instants as SAML uses them, and the skew-aware comparisons.

use chrono::{DateTime, Utc};

/// Parses an xs:dateTime. SAML requires UTC ("Z"); an explicit offset is
/// converted, and a missing zone is read as UTC as every peer library does.
pub fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|n| n.and_utc())
        .map_err(|_| format!("{text:?} is not an xs:dateTime such as 2024-01-31T12:00:00Z"))
}

/// Renders an instant the way the DETAIL messages show it.
pub fn show(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_forms_idps_send() {
        let z = parse_instant("2014-02-19T01:37:01Z").unwrap();
        assert_eq!(show(z), "2014-02-19T01:37:01Z");
        let frac = parse_instant("2014-02-19T01:37:01.123456Z").unwrap();
        assert!(frac > z);
        let offset = parse_instant("2014-02-19T02:37:01+01:00").unwrap();
        assert_eq!(offset, z);
        assert_eq!(parse_instant("2014-02-19T01:37:01").unwrap(), z);
        assert!(parse_instant("yesterday").is_err());
        assert!(parse_instant("").is_err());
    }
}
