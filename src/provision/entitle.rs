//! The entitlement step of a login: may this IdP vouch for the user's e-mail
//! address (`identity_provider.email_domains`), and does the user hold one of
//! the groups the IdP requires (`required_groups`)? Pure functions.
//!
//! Linking an SSO identity to an existing account by an e-mail address that
//! the IdP was not entitled to assert is how most SSO account takeovers of
//! recent years happened: customer B's IdP asserting `ceo@customer-a.com`.
//! So a domain matches only exactly (`example.com`) or as a proper subdomain
//! (`*.example.com`), compared case-insensitively in A-label form, and a
//! domain that is not already in canonical form (full-width letters, other
//! characters IDNA would map to something else) matches nothing: an identity
//! is never normalized into another one.

use crate::saml::{reject, Reason, Reject};

/// The canonical form of a domain: lower case, A-labels, no trailing dot.
/// None when `domain` is not a valid domain name, or not in a form that
/// differs from the canonical one by letter case only.
pub fn canonical_domain(domain: &str) -> Option<String> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() {
        return None;
    }
    let ascii = idna::domain_to_ascii_strict(domain).ok()?;
    let same_ascii = ascii == domain.to_ascii_lowercase();
    let same_unicode = || {
        let (unicode, result) = idna::domain_to_unicode(&ascii);
        result.is_ok() && unicode == domain.to_lowercase()
    };
    (same_ascii || same_unicode()).then_some(ascii)
}

/// A configured `email_domains` entry in canonical form (`*.` kept), or why
/// it is not one.
pub fn email_domain_pattern(pattern: &str) -> Result<String, String> {
    let (wildcard, base) = match pattern.strip_prefix("*.") {
        Some(base) => ("*.", base),
        None => ("", pattern),
    };
    if base.contains('*') {
        return Err(format!(
            "{pattern:?}: a wildcard may only be the first label, as in \"*.example.com\""
        ));
    }
    if base.contains('@') {
        return Err(format!(
            "{pattern:?} is an e-mail address; give its domain (the part after @)"
        ));
    }
    let canonical = canonical_domain(base).ok_or_else(|| {
        format!("{pattern:?} is not a domain name (letters, digits, hyphens, dots)")
    })?;
    if !canonical.contains('.') {
        return Err(format!(
            "{pattern:?} is a top-level domain: an IdP may vouch for a domain it owns, not for all of {canonical:?}"
        ));
    }
    Ok(format!("{wildcard}{canonical}"))
}

/// Whether a canonical domain falls under a canonical pattern.
fn matches(domain: &str, pattern: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(base) => domain
            .strip_suffix(base)
            .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
        None => domain == pattern,
    }
}

/// Checks the mapped e-mail against the IdP's `email_domains` (canonical
/// patterns, as stored). Ok(true): the e-mail is verified; Ok(false): the IdP
/// has no `email_domains`, so nothing is verified and nothing refused.
pub fn check_email(email: Option<&str>, domains: Option<&[String]>) -> Result<bool, Reject> {
    let Some(domains) = domains else {
        return Ok(false);
    };
    let listed = domains.join(", ");
    let refuse = |why: String| {
        Err(reject(
            Reason::EmailDomainNotAllowed,
            format!("{why}; this IdP may vouch only for e-mail addresses in: {listed} (identity_provider.email_domains)"),
        ))
    };
    let Some(email) = email else {
        return refuse("the IdP sent no e-mail address".into());
    };
    let Some((local, domain)) = email.rsplit_once('@') else {
        return refuse(format!("{email:?} is not an e-mail address (no @)"));
    };
    if local.is_empty() {
        return refuse(format!(
            "{email:?} is not an e-mail address (nothing before the @)"
        ));
    }
    let Some(canonical) = canonical_domain(domain) else {
        return refuse(format!(
            "the domain {domain:?} of {email:?} is not a domain name in canonical form"
        ));
    };
    if domains.iter().any(|pattern| matches(&canonical, pattern)) {
        Ok(true)
    } else {
        refuse(format!(
            "the e-mail {email:?} is in the domain {canonical:?}"
        ))
    }
}

/// Checks the mapped groups against the IdP's `required_groups`: at least
/// one must be held (exact, case-sensitive names, after group mapping).
pub fn check_groups(groups: &[String], required: Option<&[String]>) -> Result<(), Reject> {
    let Some(required) = required else {
        return Ok(());
    };
    if groups.iter().any(|g| required.contains(g)) {
        return Ok(());
    }
    Err(reject(
        Reason::NotEntitled,
        format!(
            "this IdP admits only members of one of {required:?} (identity_provider.required_groups); \
             the user's groups after mapping are {groups:?}"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains(list: &[&str]) -> Vec<String> {
        list.iter()
            .map(|p| email_domain_pattern(p).unwrap())
            .collect()
    }

    fn verdict(email: &str, list: &[&str]) -> Result<bool, Reject> {
        check_email(Some(email), Some(&domains(list)))
    }

    #[test]
    fn patterns_are_stored_canonical() {
        assert_eq!(email_domain_pattern("Example.COM").unwrap(), "example.com");
        assert_eq!(email_domain_pattern("example.com.").unwrap(), "example.com");
        assert_eq!(
            email_domain_pattern("*.Example.com").unwrap(),
            "*.example.com"
        );
        assert_eq!(
            email_domain_pattern("bücher.de").unwrap(),
            "xn--bcher-kva.de"
        );
        assert_eq!(
            email_domain_pattern("BÜCHER.de").unwrap(),
            "xn--bcher-kva.de"
        );
        assert_eq!(
            email_domain_pattern("xn--bcher-kva.de").unwrap(),
            "xn--bcher-kva.de"
        );
        for bad in [
            "",
            "*",
            "*.",
            "com",
            "*.com",
            "a.*.com",
            "**.example.com",
            "user@example.com",
            "exa mple.com",
            "example..com",
            "-example.com",
            "ｅｘａｍｐｌｅ.com",
            "example.com/x",
        ] {
            assert!(
                email_domain_pattern(bad).is_err(),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn exact_domains_match_case_insensitively_and_only_exactly() {
        let list = ["example.com"];
        assert_eq!(verdict("ada@example.com", &list), Ok(true));
        assert_eq!(verdict("Ada@EXAMPLE.Com", &list), Ok(true));
        assert_eq!(verdict("ada@example.com.", &list), Ok(true), "trailing dot");
        for other in [
            "ada@sub.example.com",
            "ada@evil-example.com",
            "ada@example.com.evil.org",
            "ada@example.co",
            "ada@xample.com",
        ] {
            let r = verdict(other, &list).unwrap_err();
            assert_eq!(r.reason, Reason::EmailDomainNotAllowed, "{other}");
        }
    }

    #[test]
    fn wildcard_means_proper_subdomains_only() {
        let list = ["*.example.com"];
        assert_eq!(verdict("ada@eu.example.com", &list), Ok(true));
        assert_eq!(verdict("ada@a.b.example.com", &list), Ok(true));
        for other in [
            "ada@example.com",
            "ada@evil-example.com",
            "ada@evilexample.com",
            "ada@.example.com",
        ] {
            assert!(verdict(other, &list).is_err(), "{other}");
        }
    }

    #[test]
    fn the_domain_is_after_the_last_at() {
        let list = ["example.com"];
        assert_eq!(verdict("\"a@evil.com\"@example.com", &list), Ok(true));
        assert!(verdict("ada@example.com@evil.com", &list).is_err());
        assert!(verdict("ada.example.com", &list).is_err(), "no @");
        assert!(verdict("@example.com", &list).is_err(), "no local part");
        assert!(verdict("ada@", &list).is_err(), "no domain");
        assert!(
            check_email(None, Some(&domains(&list))).is_err(),
            "no e-mail at all"
        );
    }

    #[test]
    fn idn_domains_compare_in_a_label_form() {
        let list = ["bücher.de"];
        assert_eq!(verdict("ada@bücher.de", &list), Ok(true));
        assert_eq!(verdict("ada@BÜCHER.DE", &list), Ok(true));
        assert_eq!(verdict("ada@xn--bcher-kva.de", &list), Ok(true));
        assert!(verdict("ada@bucher.de", &list).is_err());
        // Full-width letters would map to "example.com" under IDNA: refused,
        // not normalized into the domain they imitate.
        assert!(verdict("ada@ｅｘａｍｐｌｅ.com", &["example.com"]).is_err());
        // A Cyrillic "е" is another domain, not example.com.
        assert!(verdict("ada@\u{0435}xample.com", &["example.com"]).is_err());
    }

    #[test]
    fn without_email_domains_nothing_is_verified_or_refused() {
        assert_eq!(check_email(Some("ada@anything.example"), None), Ok(false));
        assert_eq!(check_email(None, None), Ok(false));
    }

    #[test]
    fn required_groups_need_one_exact_match() {
        let required = vec!["app-users".to_string(), "admins".to_string()];
        assert!(check_groups(&["admins".into()], Some(&required)).is_ok());
        assert!(check_groups(&[], None).is_ok());
        let r = check_groups(&["Admins".into(), "staff".into()], Some(&required)).unwrap_err();
        assert_eq!(r.reason, Reason::NotEntitled);
        assert!(
            r.detail.contains("app-users") && r.detail.contains("staff"),
            "{}",
            r.detail
        );
        assert!(check_groups(&[], Some(&required)).is_err());
    }
}
