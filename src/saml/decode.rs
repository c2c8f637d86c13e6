//! Step 1: the POSTed base64 value to XML bytes, refusing oversized input and
//! documents whose shape alone is hostile (DTDs, absurd nesting, more than one
//! root) before any DOM is built.

use base64::Engine;
use quick_xml::events::Event;
use quick_xml::Reader;

use super::{reject, Reason, Reject};

/// Deeper nesting than any real SAML response has (they stay below 15).
pub const MAX_DEPTH: usize = 64;

/// Decodes the base64 SAMLResponse. Line breaks and spaces are ignored
/// (IdPs wrap base64 at 64 or 76 columns); anything else must be base64.
pub fn decode_response(input: &str, max_bytes: usize) -> Result<Vec<u8>, Reject> {
    if input.len() > max_bytes {
        return Err(reject(
            Reason::TooLarge,
            format!(
                "the response is {} bytes of base64; saml_jit.max_response_bytes allows {max_bytes}",
                input.len()
            ),
        ));
    }
    let compact: Vec<u8> = input.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(reject(Reason::Malformed, "the response is empty"));
    }
    let xml = base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .map_err(|e| {
            reject(
                Reason::Malformed,
                format!(
                    "the response is not base64 ({e}); pass the SAMLResponse form field exactly \
                     as posted (URL-decoded, not yet base64-decoded)"
                ),
            )
        })?;
    check_shape(&xml)?;
    Ok(xml)
}

/// A streaming pass over the raw XML: no DOCTYPE (so no entity can ever be
/// expanded), bounded depth, exactly one root element, well-formed nesting.
pub fn check_shape(xml: &[u8]) -> Result<(), Reject> {
    let mut reader = Reader::from_reader(xml);
    reader.config_mut().check_end_names = true;
    let mut depth = 0usize;
    let mut roots = 0usize;
    let mut buf = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buf).map_err(|e| {
            reject(
                Reason::Malformed,
                format!(
                    "the XML is not well-formed at byte {}: {e}",
                    reader.buffer_position()
                ),
            )
        })?;
        match event {
            Event::DocType(_) => {
                return Err(reject(
                    Reason::DtdForbidden,
                    "the document has a DOCTYPE; SAML responses never need one and it is refused \
                     before any entity could be expanded",
                ))
            }
            Event::Start(_) => {
                if depth == 0 {
                    roots += 1;
                }
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(reject(
                        Reason::Malformed,
                        format!("elements are nested more than {MAX_DEPTH} levels deep"),
                    ));
                }
            }
            Event::Empty(_) if depth == 0 => roots += 1,
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Text(t) if depth == 0 && !t.iter().all(|b| b.is_ascii_whitespace()) => {
                return Err(reject(Reason::Malformed, "text outside the root element"))
            }
            Event::CData(_) if depth == 0 => {
                return Err(reject(Reason::Malformed, "CDATA outside the root element"))
            }
            Event::Eof => break,
            _ => {}
        }
        if roots > 1 {
            return Err(reject(
                Reason::Malformed,
                "the document has more than one root element",
            ));
        }
        buf.clear();
    }
    if roots == 0 {
        return Err(reject(
            Reason::Malformed,
            "the document has no root element",
        ));
    }
    if depth != 0 {
        return Err(reject(
            Reason::Malformed,
            "the document is truncated (unclosed elements)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn code(r: Result<Vec<u8>, Reject>) -> &'static str {
        r.map(|_| "ok").unwrap_or_else(|e| e.code())
    }

    #[test]
    fn accepts_wrapped_base64() {
        let doc = b64("<a><b/></a>");
        let wrapped = format!("{}\r\n{}\n", &doc[..4], &doc[4..]);
        assert_eq!(decode_response(&wrapped, 1000).unwrap(), b"<a><b/></a>");
    }

    #[test]
    fn refuses_hostile_shapes() {
        assert_eq!(code(decode_response(&b64("<a/>"), 3)), "too_large");
        assert_eq!(code(decode_response("not base64!", 1000)), "malformed");
        assert_eq!(code(decode_response("", 1000)), "malformed");
        assert_eq!(code(decode_response(&b64("<a><b></a>"), 1000)), "malformed");
        assert_eq!(code(decode_response(&b64("<a><b>"), 1000)), "malformed");
        assert_eq!(code(decode_response(&b64("<a/><b/>"), 1000)), "malformed");
        assert_eq!(code(decode_response(&b64("just text"), 1000)), "malformed");
        let laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">\
                      <!ENTITY lol2 \"&lol;&lol;&lol;\">]><lolz>&lol2;</lolz>";
        assert_eq!(code(decode_response(&b64(laughs), 10_000)), "dtd_forbidden");
        let xxe = "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>";
        assert_eq!(code(decode_response(&b64(xxe), 10_000)), "dtd_forbidden");
        let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
        assert_eq!(code(decode_response(&b64(&deep), 10_000)), "malformed");
    }
}
