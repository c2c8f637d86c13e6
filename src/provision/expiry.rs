//! Account expiry at login: from the IdP's expiry attribute when configured,
//! else from the IdP's account_ttl. Pure Rust.

use chrono::{DateTime, Duration, Utc};

use crate::saml::extract::Attribute;
use crate::saml::time::parse_instant;
use crate::saml::{reject, Reason, Reject};

/// The per-IdP expiry configuration.
#[derive(Debug, Clone, Default)]
pub struct ExpiryPolicy {
    pub attribute: Option<String>,
    pub account_ttl: Option<Duration>,
    /// "account_ttl", "keep" or "reject".
    pub fallback: String,
}

/// What the login writes into users.expires_at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiry {
    At(Option<DateTime<Utc>>),
    /// Leave the stored value as it is.
    Keep,
}

/// An expiry attribute value: an xs:dateTime, or a number of days from now.
fn parse_expiry(value: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let v = crate::saml::text::xml_trim(value);
    if let Ok(t) = parse_instant(v) {
        return Some(t);
    }
    let days: f64 = v
        .parse()
        .ok()
        .filter(|d: &f64| d.is_finite() && *d >= 0.0 && *d < 36_500.0)?;
    Some(now + Duration::seconds((days * 86_400.0) as i64))
}

pub fn expiry(
    policy: &ExpiryPolicy,
    attributes: &[Attribute],
    now: DateTime<Utc>,
) -> Result<Expiry, Reject> {
    let ttl = || Expiry::At(policy.account_ttl.map(|t| now + t));
    let Some(name) = &policy.attribute else {
        return Ok(ttl());
    };
    let value = attributes
        .iter()
        .find(|a| &a.name == name || a.friendly_name.as_ref() == Some(name))
        .and_then(|a| a.values.first());
    if let Some(at) = value.and_then(|v| parse_expiry(v, now)) {
        return Ok(Expiry::At(Some(at)));
    }
    let problem = match value {
        None => format!("the expiry attribute {name:?} is absent"),
        Some(v) => format!(
            "the expiry attribute {name:?} has the value {v:?}, neither an xs:dateTime nor a number of days"
        ),
    };
    match policy.fallback.as_str() {
        "keep" => Ok(Expiry::Keep),
        "reject" => Err(reject(
            Reason::RequiredAttributeMissing,
            format!("{problem}, and this IdP has expiry_fallback = 'reject'"),
        )),
        _ => Ok(ttl()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(v: &str) -> Vec<Attribute> {
        vec![Attribute {
            name: "account-expiry-time".into(),
            friendly_name: None,
            values: vec![v.into()],
        }]
    }

    #[test]
    fn dates_days_and_fallbacks() {
        let now = parse_instant("2026-01-01T00:00:00Z").unwrap();
        let mut p = ExpiryPolicy {
            attribute: Some("account-expiry-time".into()),
            account_ttl: Some(Duration::days(30)),
            fallback: "account_ttl".into(),
        };
        let at = |s: &str| Expiry::At(Some(parse_instant(s).unwrap()));
        assert_eq!(
            expiry(&p, &attrs("2026-06-30T12:00:00Z"), now).unwrap(),
            at("2026-06-30T12:00:00Z")
        );
        assert_eq!(
            expiry(&p, &attrs("2026-06-30T14:00:00+02:00"), now).unwrap(),
            at("2026-06-30T12:00:00Z")
        );
        assert_eq!(
            expiry(&p, &attrs("10"), now).unwrap(),
            at("2026-01-11T00:00:00Z")
        );
        assert_eq!(
            expiry(&p, &attrs("soon"), now).unwrap(),
            at("2026-01-31T00:00:00Z")
        );
        assert_eq!(expiry(&p, &[], now).unwrap(), at("2026-01-31T00:00:00Z"));
        p.fallback = "keep".into();
        assert_eq!(expiry(&p, &attrs("soon"), now).unwrap(), Expiry::Keep);
        p.fallback = "reject".into();
        let err = expiry(&p, &attrs("soon"), now).unwrap_err();
        assert_eq!(err.code(), "required_attribute_missing");
        assert!(err.detail.contains("\"soon\""), "{}", err.detail);
        p.attribute = None;
        p.account_ttl = None;
        assert_eq!(expiry(&p, &attrs("10"), now).unwrap(), Expiry::At(None));
    }
}
