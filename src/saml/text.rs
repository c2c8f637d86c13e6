//! The two lexical rules every identity and reference value goes through:
//! XML whitespace (never Unicode spaces) and the NCName of `xs:ID`.

/// XML whitespace (XML 1.0 production S): space, tab, CR, LF. Nothing else.
/// U+00A0, U+3000, U+2028 and friends are characters of the value: an IdP
/// account `jdoe` + NBSP is not `jdoe`.
pub fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// The value with leading and trailing XML whitespace removed.
pub fn xml_trim(text: &str) -> &str {
    text.trim_matches(is_xml_space)
}

/// Longest ID accepted. Real IdPs use 20 to 60 characters (the longest in the
/// shared corpora is 52); xs:ID sets no bound, so this one is ours.
pub const MAX_ID_LEN: usize = 256;

/// Whether `value` can be an `xs:ID` as IdPs really write them, at most
/// `MAX_ID_LEN` bytes: NCName characters only (XML Namespaces 1.0: a Name
/// without colons). The NCName start-character rule is relaxed because real
/// IdPs start IDs with a digit (a bare UUID, as in the crewjam real-world
/// fixture), which libxml2 and xmlsec resolve like any other ID. Quotes,
/// parentheses, spaces, commas and `xpointer(...)` text can never pass, so no
/// ID can be turned into an XPointer expression.
pub fn is_ncname(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_ID_LEN && value.chars().all(is_name_char)
}

fn is_name_start(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c,
            '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// A same-document reference to an ID: `#` followed by an NCName.
pub fn is_id_reference(uri: &str) -> bool {
    uri.strip_prefix('#').is_some_and(is_ncname)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_trim_keeps_unicode_spaces() {
        assert_eq!(xml_trim(" \t\r\njdoe\n "), "jdoe");
        for space in [
            '\u{A0}', '\u{3000}', '\u{2003}', '\u{85}', '\u{2028}', '\u{202F}', '\u{FEFF}',
        ] {
            let value = format!("jdoe{space}");
            assert_eq!(xml_trim(&value), value, "U+{:04X} must stay", space as u32);
            let value = format!("{space}jdoe");
            assert_eq!(xml_trim(&value), value);
        }
    }

    #[test]
    fn ncname() {
        for ok in [
            "_a1",
            "id-6d976cdde8e76df5df0a8ff58148fc0b7ec6796d",
            "pfx4400b8cb-db22-beea-1787-9cfe5d720e4e",
            "ID_c5f0889f.3600",
            "é1",
            "28338c8c-39ab-4b94-bcdc-46f68f99d962",
        ] {
            assert!(is_ncname(ok), "{ok}");
        }
        for bad in [
            "",
            "a:b",
            "a b",
            "a'b",
            "a\"b",
            "xpointer(id('a'))",
            "a)",
            "a,b",
            "a\u{A0}",
            &"a".repeat(MAX_ID_LEN + 1),
        ] {
            assert!(!is_ncname(bad), "{bad:?}");
        }
        assert!(is_id_reference("#_a1"));
        assert!(!is_id_reference("_a1"));
        assert!(!is_id_reference("#xpointer(/)"));
        assert!(!is_id_reference(""));
        assert!(!is_id_reference("file:///etc/passwd"));
    }
}
