//! A small owned element tree, built with quick-xml from the canonical bytes a
//! signature covered (or, for the unsigned envelope, copied from the DOM).
//! Namespaces are resolved, so `saml:Issuer` and `foo:Issuer` bound to the
//! same URI are the same element and a look-alike in another namespace is not.

use std::borrow::Cow;

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use super::dom::{Node, NS_ASSERTION, NS_DSIG, NS_PROTOCOL};
use super::{reject, Reason, Reject};

#[derive(Debug, Clone, Default)]
pub struct Element {
    /// The namespace URI: borrowed for the namespaces SAML documents are
    /// made of (one allocation less per element), owned for any other.
    pub ns: Cow<'static, str>,
    pub name: String,
    /// Attributes without a namespace prefix (SAML's own attributes).
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    /// Text directly inside this element, in order, comments excluded.
    pub text: String,
}

impl Element {
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.name == name && self.ns == ns
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    /// All text of the subtree, in document order.
    pub fn deep_text(&self) -> String {
        let mut out = self.text.clone();
        for c in &self.children {
            out.push_str(&c.deep_text());
        }
        out
    }

    /// Parses canonical XML bytes into a tree (the root element).
    pub fn parse(xml: &[u8]) -> Result<Element, Reject> {
        let mut reader = NsReader::from_reader(xml);
        reader.config_mut().check_end_names = true;
        let bad = |e: String| {
            reject(
                Reason::Malformed,
                format!("the signed XML cannot be read: {e}"),
            )
        };
        let mut stack: Vec<Element> = Vec::new();
        let mut buf = Vec::new();
        loop {
            let (ns, event) = reader
                .read_resolved_event_into(&mut buf)
                .map_err(|e| bad(e.to_string()))?;
            match event {
                Event::Start(ref e) | Event::Empty(ref e) => {
                    let mut el = Element {
                        ns: match ns {
                            ResolveResult::Bound(n) => namespace(n.as_ref()),
                            _ => Cow::Borrowed(""),
                        },
                        name: text(e.local_name().as_ref()),
                        ..Element::default()
                    };
                    for a in e.attributes() {
                        let a = a.map_err(|e| bad(e.to_string()))?;
                        if a.key.prefix().is_some() || a.key.as_ref() == b"xmlns" {
                            continue;
                        }
                        let value = a.unescape_value().map_err(|e| bad(e.to_string()))?;
                        el.attrs.push((text(a.key.as_ref()), value.into_owned()));
                    }
                    if matches!(event, Event::Empty(_)) {
                        attach(&mut stack, el);
                    } else {
                        stack.push(el);
                    }
                }
                Event::End(_) => {
                    let el = stack
                        .pop()
                        .ok_or_else(|| bad("unbalanced end tag".into()))?;
                    if stack.is_empty() {
                        return Ok(el);
                    }
                    attach(&mut stack, el);
                }
                Event::Text(t) => {
                    if let Some(top) = stack.last_mut() {
                        top.text
                            .push_str(&t.unescape().map_err(|e| bad(e.to_string()))?);
                    }
                }
                Event::CData(t) => {
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&String::from_utf8_lossy(&t.into_inner()));
                    }
                }
                Event::Eof => return Err(bad("no root element".into())),
                _ => {}
            }
            buf.clear();
        }
    }

    /// Serializes the subtree as XML with generated prefixes (n0, n1, ...)
    /// declared where first used: equivalent to the original for every
    /// namespace-aware reader (used to hand an encrypted element to xmlsec).
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        let mut bound: Vec<String> = Vec::new();
        self.write_xml(&mut out, &mut bound);
        out
    }

    fn write_xml(&self, out: &mut String, bound: &mut Vec<String>) {
        let escape = |v: &str| {
            v.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let (tag, declare) = if self.ns.is_empty() {
            (self.name.clone(), None)
        } else if let Some(i) = bound.iter().position(|n| n == &self.ns) {
            (format!("n{i}:{}", self.name), None)
        } else {
            bound.push(self.ns.to_string());
            let i = bound.len() - 1;
            (
                format!("n{i}:{}", self.name),
                Some(format!(" xmlns:n{i}=\"{}\"", escape(&self.ns))),
            )
        };
        out.push('<');
        out.push_str(&tag);
        if let Some(d) = &declare {
            out.push_str(d);
        }
        for (k, v) in &self.attrs {
            out.push_str(&format!(" {k}=\"{}\"", escape(v)));
        }
        out.push('>');
        out.push_str(&escape(&self.text));
        for c in &self.children {
            c.write_xml(out, bound);
        }
        out.push_str(&format!("</{tag}>"));
        if declare.is_some() {
            bound.pop();
        }
    }

    /// Copies a DOM subtree, leaving out the children `skip` selects.
    pub fn from_dom(node: Node, skip: &dyn Fn(&Node) -> bool) -> Element {
        let mut el = Element {
            ns: Cow::Owned(node.namespace().unwrap_or_default()),
            name: node.local_name(),
            attrs: node.plain_attributes(),
            text: node.own_text(),
            children: Vec::new(),
        };
        for c in node.children() {
            if !skip(&c) {
                el.children.push(Element::from_dom(c, skip));
            }
        }
        el
    }
}

/// The namespaces of SAML responses, so that most elements borrow theirs.
const KNOWN_NAMESPACES: [&str; 5] = [
    NS_ASSERTION,
    NS_PROTOCOL,
    NS_DSIG,
    "http://www.w3.org/2001/04/xmlenc#",
    "http://www.w3.org/2001/XMLSchema-instance",
];

fn namespace(uri: &[u8]) -> Cow<'static, str> {
    KNOWN_NAMESPACES
        .iter()
        .find(|known| known.as_bytes() == uri)
        .map(|known| Cow::Borrowed(*known))
        .unwrap_or_else(|| Cow::Owned(text(uri)))
}

/// Bytes quick-xml returns as text (checked UTF-8 first: the lossy
/// conversion walks every byte in chunks even when nothing is invalid).
fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn attach(stack: &mut Vec<Element>, el: Element) {
    if let Some(parent) = stack.last_mut() {
        parent.children.push(el);
    } else {
        stack.push(el);
    }
}
