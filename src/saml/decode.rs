//! Step 1: the POSTed base64 value to UTF-8 XML bytes, refusing oversized
//! input and documents whose shape alone is hostile (shape.rs) before any DOM
//! is built.

use base64::Engine;

use super::shape::{check_shape, Limits};
use super::{reject, Reason, Reject};

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
    let engine = &base64::engine::general_purpose::STANDARD;
    // Most applications pass the form field unwrapped: decode it as it is,
    // and strip line breaks only when that fails (a byte-by-byte copy of
    // every response cost ~2 % of a login).
    let decoded = match engine.decode(input) {
        Ok(xml) if !xml.is_empty() => Ok(xml),
        _ => {
            let compact: Vec<u8> = input.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
            if compact.is_empty() {
                return Err(reject(Reason::Malformed, "the response is empty"));
            }
            engine.decode(&compact)
        }
    };
    let xml = decoded.map_err(|e| {
        reject(
            Reason::Malformed,
            format!(
                "the response is not base64 ({e}); pass the SAMLResponse form field exactly \
                     as posted (URL-decoded, not yet base64-decoded)"
            ),
        )
    })?;
    let xml = to_utf8(xml)?;
    check_shape(&xml, &Limits::RESPONSE)?;
    Ok(xml)
}

/// The document as UTF-8. XML 1.0 (4.3.3) makes every processor read UTF-16:
/// a document with a UTF-16 byte order mark, or that starts `<` as UTF-16
/// without one, is transcoded here, and its XML declaration's `encoding` is
/// rewritten to match. Signatures are unaffected: what they digest is the
/// canonical form, which is UTF-8 whatever the input encoding was.
pub fn to_utf8(xml: Vec<u8>) -> Result<Vec<u8>, Reject> {
    let (little_endian, body) = match xml.as_slice() {
        [0xFF, 0xFE, rest @ ..] => (true, rest),
        [0xFE, 0xFF, rest @ ..] => (false, rest),
        [b'<', 0, _, 0, ..] => (true, xml.as_slice()),
        [0, b'<', 0, _, ..] => (false, xml.as_slice()),
        _ => return Ok(xml),
    };
    if body.len() % 2 != 0 {
        return Err(reject(
            Reason::Malformed,
            "the document is UTF-16 with an odd number of bytes",
        ));
    }
    let units = body.chunks_exact(2).map(|pair| {
        let bytes = [pair[0], pair[1]];
        if little_endian {
            u16::from_le_bytes(bytes)
        } else {
            u16::from_be_bytes(bytes)
        }
    });
    let text: String = char::decode_utf16(units)
        .collect::<Result<_, _>>()
        .map_err(|_| reject(Reason::Malformed, "the document is not valid UTF-16"))?;
    Ok(declare_utf8(&text).into_bytes())
}

/// `text` with the encoding of its XML declaration (if any) set to UTF-8.
fn declare_utf8(text: &str) -> String {
    let Some(declaration_end) = text.starts_with("<?xml").then(|| text.find("?>")).flatten() else {
        return text.to_string();
    };
    let declaration = &text[..declaration_end];
    let Some(at) = declaration.find("encoding") else {
        return text.to_string();
    };
    let rest = &declaration[at..];
    let value = rest.find(['"', '\'']).and_then(|open| {
        let quote = rest[open..].chars().next()?;
        let close = rest[open + 1..].find(quote)? + open + 1;
        Some((at + open + 1, at + close))
    });
    match value {
        Some((from, to)) => format!("{}UTF-8{}", &text[..from], &text[to..]),
        None => text.to_string(),
    }
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

    fn utf16(text: &str, little_endian: bool, bom: bool) -> String {
        let mut bytes = Vec::new();
        if bom {
            bytes.extend(if little_endian {
                [0xFF, 0xFE]
            } else {
                [0xFE, 0xFF]
            });
        }
        for unit in text.encode_utf16() {
            bytes.extend(if little_endian {
                unit.to_le_bytes()
            } else {
                unit.to_be_bytes()
            });
        }
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn reads_utf16() {
        let doc = "<?xml version=\"1.0\" encoding=\"UTF-16\"?><a>Dö€</a>";
        let want = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><a>Dö€</a>".as_bytes();
        for (le, bom) in [(true, true), (false, true), (true, false), (false, false)] {
            assert_eq!(decode_response(&utf16(doc, le, bom), 10_000).unwrap(), want);
        }
        let plain = "<a encoding='x'/>";
        assert_eq!(
            decode_response(&utf16(plain, true, true), 10_000).unwrap(),
            plain.as_bytes()
        );
        let mut odd = utf16(plain, true, true);
        odd = b64(&{
            let mut b = base64::engine::general_purpose::STANDARD
                .decode(odd)
                .unwrap();
            b.push(0);
            String::from_utf8_lossy(&b).into_owned()
        });
        assert_eq!(code(decode_response(&odd, 10_000)), "malformed");
    }
}
