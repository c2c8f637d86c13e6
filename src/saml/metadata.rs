//! SAML metadata: reading an IdP's EntityDescriptor (entity ID, signing
//! certificates, SSO endpoints, NameID formats, validUntil) and writing this
//! SP's own. Pure Rust over the element tree.

use chrono::{DateTime, Utc};

use super::dom::NS_DSIG;
use super::shape::{check_shape, Limits};
use super::time::parse_instant;
use super::tree::Element;

pub const NS_MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
pub const BINDING_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
pub const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

/// What an IdP's metadata says that saml_jit uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpMetadata {
    pub entity_id: String,
    /// Base64 DER of each signing certificate, in document order, deduplicated.
    pub signing_certificates: Vec<String>,
    pub sso_redirect: Option<String>,
    pub sso_post: Option<String>,
    /// SingleLogoutService per binding: (Location, ResponseLocation).
    pub slo_redirect: Option<(String, Option<String>)>,
    pub slo_post: Option<(String, Option<String>)>,
    pub name_id_formats: Vec<String>,
    pub valid_until: Option<DateTime<Utc>>,
    /// The shortest cacheDuration that applies: how long a copy may be used
    /// before it is fetched again.
    pub cache_duration: Option<chrono::Duration>,
    pub want_authn_requests_signed: bool,
}

/// The time bounds an entity inherits from its own element and the
/// EntitiesDescriptors around it: the earliest validUntil, the shortest
/// cacheDuration.
#[derive(Clone, Copy, Default)]
struct Bounds {
    valid_until: Option<DateTime<Utc>>,
    cache_duration: Option<chrono::Duration>,
}

impl Bounds {
    fn within(self, el: &Element) -> Bounds {
        Bounds {
            valid_until: earliest(
                self.valid_until,
                el.attr("validUntil").and_then(|v| parse_instant(v).ok()),
            ),
            cache_duration: earliest(
                self.cache_duration,
                el.attr("cacheDuration").and_then(parse_duration),
            ),
        }
    }
}

/// The smaller of two optional values, or the one that is there.
fn earliest<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// An xs:duration such as `PT6H` or `P1DT12H30M`; years and months count as
/// 365 and 30 days. None for a negative or unreadable one (ignored, as the
/// attribute is optional).
pub fn parse_duration(text: &str) -> Option<chrono::Duration> {
    let rest = super::text::xml_trim(text).strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (rest, None),
    };
    let mut seconds = 0f64;
    let mut any = false;
    let mut take = |part: &str, units: &[(char, f64)], fractions: bool| -> Option<()> {
        let mut number = String::new();
        let mut unit_index = 0;
        for c in part.chars() {
            if c.is_ascii_digit() || (fractions && c == '.') {
                number.push(c);
                continue;
            }
            let at = units[unit_index..].iter().position(|(u, _)| *u == c)? + unit_index;
            if number.is_empty() || (number.contains('.') && c != 'S') {
                return None;
            }
            seconds += number.parse::<f64>().ok()? * units[at].1;
            any = true;
            number.clear();
            unit_index = at + 1;
        }
        number.is_empty().then_some(())
    };
    const DAY: f64 = 86_400.0;
    take(
        date,
        &[('Y', 365.0 * DAY), ('M', 30.0 * DAY), ('D', DAY)],
        false,
    )?;
    if let Some(time) = time {
        take(time, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)], true)?;
    }
    (any && seconds.is_finite() && seconds < 1e12)
        .then(|| chrono::Duration::milliseconds((seconds * 1000.0) as i64))
}

/// Reads IdP metadata; `entity_id` picks one entity out of an
/// EntitiesDescriptor (optional when it holds exactly one IdP).
pub fn parse_idp_metadata(xml: &str, entity_id: Option<&str>) -> Result<IdpMetadata, String> {
    check_shape(xml.as_bytes(), &Limits::METADATA)
        .map_err(|r| format!("the metadata is not acceptable XML: {}", r.detail))?;
    let root = Element::parse(xml.as_bytes()).map_err(|r| r.detail)?;
    let mut candidates = Vec::new();
    collect_idps(&root, Bounds::default(), &mut candidates);
    let chosen = match (entity_id, candidates.as_slice()) {
        (Some(want), _) => candidates
            .iter()
            .find(|(e, _)| e.attr("entityID") == Some(want))
            .ok_or_else(|| format!("the metadata has no IdP with entityID {want:?} (it has: {})", names(&candidates)))?,
        (None, [one]) => one,
        (None, []) => {
            return Err("the metadata has no EntityDescriptor with an IDPSSODescriptor (is this an SP's metadata?)".into())
        }
        (None, _) => {
            return Err(format!(
                "the metadata describes {} IdPs ({}): pass entity_id => '...' to choose one",
                candidates.len(),
                names(&candidates)
            ))
        }
    };
    let (entity, bounds) = chosen;
    let idp = entity
        .child(NS_MD, "IDPSSODescriptor")
        .expect("collected for it");
    let mut signing_certificates: Vec<String> = Vec::new();
    for kd in idp.children_named(NS_MD, "KeyDescriptor") {
        if !matches!(kd.attr("use"), None | Some("signing")) {
            continue;
        }
        for data in kd
            .children_named(NS_DSIG, "KeyInfo")
            .flat_map(|k| k.children_named(NS_DSIG, "X509Data"))
        {
            for cert in data.children_named(NS_DSIG, "X509Certificate") {
                let b64: String = cert.text.chars().filter(|c| !c.is_whitespace()).collect();
                if !b64.is_empty() && !signing_certificates.contains(&b64) {
                    signing_certificates.push(b64);
                }
            }
        }
    }
    let sso = |binding: &str| {
        idp.children_named(NS_MD, "SingleSignOnService")
            .find(|s| s.attr("Binding") == Some(binding))
            .and_then(|s| s.attr("Location"))
            .map(str::to_string)
    };
    let slo = |binding: &str| {
        idp.children_named(NS_MD, "SingleLogoutService")
            .find(|s| s.attr("Binding") == Some(binding))
            .and_then(|s| {
                let location = s.attr("Location")?.to_string();
                Some((location, s.attr("ResponseLocation").map(str::to_string)))
            })
    };
    Ok(IdpMetadata {
        entity_id: entity.attr("entityID").unwrap_or_default().to_string(),
        signing_certificates,
        sso_redirect: sso(BINDING_REDIRECT),
        sso_post: sso(BINDING_POST),
        slo_redirect: slo(BINDING_REDIRECT),
        slo_post: slo(BINDING_POST),
        name_id_formats: idp
            .children_named(NS_MD, "NameIDFormat")
            .map(|n| super::text::xml_trim(&n.text).to_string())
            .collect(),
        valid_until: bounds.valid_until,
        cache_duration: bounds.cache_duration,
        want_authn_requests_signed: matches!(
            idp.attr("WantAuthnRequestsSigned"),
            Some("true" | "1")
        ),
    })
}

fn names(candidates: &[(&Element, Bounds)]) -> String {
    candidates
        .iter()
        .map(|(e, _)| e.attr("entityID").unwrap_or("?"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// EntityDescriptors with an IDPSSODescriptor, with the bounds that apply to
/// each (an EntitiesDescriptor's bound its children).
fn collect_idps<'a>(el: &'a Element, inherited: Bounds, out: &mut Vec<(&'a Element, Bounds)>) {
    let bounds = inherited.within(el);
    if el.is(NS_MD, "EntityDescriptor") {
        if el.child(NS_MD, "IDPSSODescriptor").is_some() {
            out.push((el, bounds));
        }
    } else if el.is(NS_MD, "EntitiesDescriptor") {
        for child in &el.children {
            collect_idps(child, bounds, out);
        }
    }
}

/// This SP's metadata.
pub struct SpMetadata<'a> {
    pub entity_id: &'a str,
    pub acs_url: &'a str,
    /// Where IdPs send Single Logout messages (both front-channel bindings).
    pub slo_url: Option<&'a str>,
    /// Base64 DER of the SP certificates, current first, then the next one
    /// during a key rollover (each advertised for signing and encryption).
    pub certificates: &'a [String],
}

fn escape(v: &str) -> String {
    v.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn sp_metadata(sp: &SpMetadata<'_>) -> String {
    // Schema order: KeyDescriptor, SingleLogoutService, NameIDFormat, ACS.
    let slo: String = sp
        .slo_url
        .map(|url| {
            [BINDING_REDIRECT, BINDING_POST]
                .iter()
                .map(|binding| {
                    format!(
                        "<md:SingleLogoutService Binding=\"{binding}\" Location=\"{}\"/>",
                        escape(url)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut keys = String::new();
    for cert in sp.certificates {
        for usage in ["signing", "encryption"] {
            keys.push_str(&format!(
                "<md:KeyDescriptor use=\"{usage}\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}\
                 </ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
            ));
        }
    }
    format!(
        "<md:EntityDescriptor xmlns:md=\"{NS_MD}\" xmlns:ds=\"{NS_DSIG}\" entityID=\"{}\">\
         <md:SPSSODescriptor AuthnRequestsSigned=\"{}\" WantAssertionsSigned=\"true\" \
         protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">{keys}{slo}\
         <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>\
         <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>\
         <md:AssertionConsumerService Binding=\"{BINDING_POST}\" Location=\"{}\" index=\"0\" isDefault=\"true\"/>\
         </md:SPSSODescriptor></md:EntityDescriptor>",
        escape(sp.entity_id),
        !sp.certificates.is_empty(),
        escape(sp.acs_url),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_xs_duration() {
        let secs = |t: &str| parse_duration(t).map(|d| d.num_seconds());
        assert_eq!(secs("PT6H"), Some(21_600));
        assert_eq!(secs("P1DT12H30M"), Some(86_400 + 12 * 3600 + 1800));
        assert_eq!(
            secs("PT1.5S").map(|_| parse_duration("PT1.5S").unwrap().num_milliseconds()),
            Some(1500)
        );
        assert_eq!(secs("P1Y"), Some(365 * 86_400));
        assert_eq!(secs(" P2M "), Some(60 * 86_400));
        for bad in [
            "", "P", "PT", "6H", "-PT6H", "PT6", "P1H", "PTH", "P1.5D", "PT1M2H", "P1D1D",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    const TWO: &str = r#"<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" validUntil="2030-01-01T00:00:00Z">
      <md:EntityDescriptor entityID="https://a/" validUntil="2029-01-01T00:00:00Z"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
        <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate> QUJD
        REVG </ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
        <md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>ZW5j</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
        <md:KeyDescriptor><ds:KeyInfo><ds:X509Data><ds:X509Certificate>Ym90aA==</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
        <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://a/slo" ResponseLocation="https://a/slo-done"/>
        <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://a/slo-post"/>
        <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
        <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://a/sso"/>
      </md:IDPSSODescriptor></md:EntityDescriptor>
      <md:EntityDescriptor entityID="https://b/"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"/></md:EntityDescriptor>
      <md:EntityDescriptor entityID="https://sp/"><md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"/></md:EntityDescriptor>
    </md:EntitiesDescriptor>"#;

    #[test]
    fn picks_an_entity_and_its_signing_keys() {
        let err = parse_idp_metadata(TWO, None).unwrap_err();
        assert!(
            err.contains("2 IdPs") && err.contains("https://a/"),
            "{err}"
        );
        let a = parse_idp_metadata(TWO, Some("https://a/")).unwrap();
        assert_eq!(
            a.signing_certificates,
            vec!["QUJDREVG", "Ym90aA=="],
            "signing and unspecified use"
        );
        assert_eq!(a.sso_redirect.as_deref(), Some("https://a/sso"));
        assert_eq!(a.sso_post, None);
        assert_eq!(
            a.slo_redirect,
            Some(("https://a/slo".into(), Some("https://a/slo-done".into())))
        );
        assert_eq!(a.slo_post, Some(("https://a/slo-post".into(), None)));
        assert_eq!(
            a.valid_until,
            Some(parse_instant("2029-01-01T00:00:00Z").unwrap())
        );
        let b = parse_idp_metadata(TWO, Some("https://b/")).unwrap();
        assert_eq!((b.slo_redirect, b.slo_post), (None, None));
        assert_eq!(
            b.valid_until,
            Some(parse_instant("2030-01-01T00:00:00Z").unwrap()),
            "inherited"
        );
        assert!(
            parse_idp_metadata(TWO, Some("https://sp/")).is_err(),
            "an SP is not an IdP"
        );
        assert!(parse_idp_metadata("<!DOCTYPE x []><x/>", None)
            .unwrap_err()
            .contains("DOCTYPE"));
    }
}
