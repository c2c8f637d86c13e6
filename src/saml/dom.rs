//! The libxml2 document that xmlsec verifies. Values are never read from it
//! for acceptance (see extract.rs); it only locates signatures, registers the
//! ID attributes that signatures may point at, and supplies unsigned envelope
//! fields that can only make a response fail.

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use xmlsec::bindings as x;

use super::{reject, Reason, Reject};

pub const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";

/// libxml2 options: no network, no entity substitution, no DTD loading, no
/// error printing (errors are collected from the parser context instead).
const PARSE_OPTIONS: i32 = (x::xmlParserOption_XML_PARSE_NONET
    | x::xmlParserOption_XML_PARSE_NOERROR
    | x::xmlParserOption_XML_PARSE_NOWARNING
    | x::xmlParserOption_XML_PARSE_NOCDATA) as i32;

/// An owned libxml2 document.
pub struct Document {
    doc: x::xmlDocPtr,
}

impl Drop for Document {
    fn drop(&mut self) {
        // SAFETY: doc came from xmlCtxtReadMemory and is freed once.
        unsafe { x::xmlFreeDoc(self.doc) }
    }
}

impl Document {
    /// Parses `xml` (already checked by prescan for DTDs and shape).
    pub fn parse(xml: &[u8]) -> Result<Document, Reject> {
        let len = i32::try_from(xml.len())
            .map_err(|_| reject(Reason::TooLarge, "document exceeds 2 GB"))?;
        // SAFETY: plain libxml2 calls; the context is freed on every path.
        unsafe {
            let ctxt = x::xmlNewParserCtxt();
            if ctxt.is_null() {
                return Err(reject(
                    Reason::Malformed,
                    "libxml2 could not allocate a parser",
                ));
            }
            let doc = x::xmlCtxtReadMemory(
                ctxt,
                xml.as_ptr() as *const c_char,
                len,
                c"saml-response.xml".as_ptr(),
                ptr::null(),
                PARSE_OPTIONS,
            );
            let problem = last_error(x::xmlCtxtGetLastError(ctxt as *mut _));
            let well_formed = (*ctxt).wellFormed != 0;
            x::xmlFreeParserCtxt(ctxt);
            if doc.is_null() || !well_formed {
                if !doc.is_null() {
                    x::xmlFreeDoc(doc);
                }
                return Err(reject(
                    Reason::Malformed,
                    format!(
                        "the XML is not well-formed: {}",
                        problem.unwrap_or_else(|| "unknown error".into())
                    ),
                ));
            }
            let document = Document { doc };
            if !(*doc).intSubset.is_null() || !(*doc).extSubset.is_null() {
                return Err(reject(Reason::DtdForbidden, "the document declares a DTD"));
            }
            Ok(document)
        }
    }

    pub fn raw(&self) -> x::xmlDocPtr {
        self.doc
    }

    pub fn root(&self) -> Option<Node> {
        // SAFETY: doc is valid for self's lifetime.
        let root = unsafe { x::xmlDocGetRootElement(self.doc) };
        (!root.is_null()).then_some(Node { ptr: root })
    }

    /// Registers `node`'s `ID` attribute as an XML ID so a `#id` Reference can
    /// resolve to it. Only the Response and its direct Assertions are
    /// registered: an element hidden anywhere else can never be a target.
    pub fn register_id(&self, node: Node) -> Result<(), Reject> {
        // SAFETY: node belongs to this document; xmlAddID copies the value.
        unsafe {
            let attr = x::xmlHasProp(node.ptr, c"ID".as_ptr() as *const u8);
            if attr.is_null() {
                return Ok(());
            }
            let value = node.attr("ID").unwrap_or_default();
            // xmlsec turns "#id" into the XPointer xpointer(id('id')): only an
            // NCName may ever get there (shape.rs refused others already).
            if !super::text::is_ncname(&value) {
                return Err(reject(
                    Reason::Malformed,
                    "an ID attribute is not an xs:ID (NCName)",
                ));
            }
            let cvalue = CString::new(value.clone())
                .map_err(|_| reject(Reason::Malformed, "an ID attribute contains NUL"))?;
            if x::xmlAddID(
                ptr::null_mut(),
                self.doc,
                cvalue.as_ptr() as *const u8,
                attr,
            )
            .is_null()
            {
                return Err(reject(
                    Reason::ReferenceInvalid,
                    format!("the ID {value:?} is used by more than one element"),
                ));
            }
        }
        Ok(())
    }
}

fn last_error(err: x::xmlErrorPtr) -> Option<String> {
    // SAFETY: libxml2 returns NULL or a valid error owned by the context.
    unsafe {
        if err.is_null() || (*err).message.is_null() {
            return None;
        }
        let msg = CStr::from_ptr((*err).message)
            .to_string_lossy()
            .trim()
            .to_string();
        Some(format!("{msg} (line {})", (*err).line))
    }
}

/// A borrowed element of a `Document`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub ptr: x::xmlNodePtr,
}

fn cstr(p: *const u8) -> Option<String> {
    // SAFETY: libxml2 strings are NUL-terminated UTF-8.
    (!p.is_null()).then(|| {
        unsafe { CStr::from_ptr(p as *const c_char) }
            .to_string_lossy()
            .into_owned()
    })
}

impl Node {
    pub fn local_name(&self) -> String {
        // SAFETY: element nodes always have a name.
        cstr(unsafe { (*self.ptr).name }).unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<String> {
        // SAFETY: ns is NULL or a valid namespace of the document.
        unsafe {
            let ns = (*self.ptr).ns;
            if ns.is_null() {
                None
            } else {
                cstr((*ns).href)
            }
        }
    }

    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.local_name() == local && self.namespace().as_deref() == Some(ns)
    }

    /// The value of an attribute without a namespace.
    pub fn attr(&self, name: &str) -> Option<String> {
        let cname = CString::new(name).ok()?;
        // SAFETY: xmlHasProp returns NULL or an attribute of this node.
        unsafe {
            let attr = x::xmlHasProp(self.ptr, cname.as_ptr() as *const u8);
            if attr.is_null() || !(*attr).ns.is_null() {
                return None;
            }
            let value = x::xmlNodeGetContent(attr as *const x::xmlNode);
            let text = cstr(value);
            free(value);
            Some(text.unwrap_or_default())
        }
    }

    /// Every attribute value of this node, whatever its name (for the
    /// duplicate-ID scan).
    pub fn attribute_values(&self, names: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        // SAFETY: walking the attribute list of a valid element.
        unsafe {
            let mut attr = (*self.ptr).properties;
            while !attr.is_null() {
                let name = cstr((*attr).name).unwrap_or_default();
                if names.contains(&name.as_str()) {
                    let value = x::xmlNodeGetContent(attr as *const x::xmlNode);
                    out.push(cstr(value).unwrap_or_default());
                    free(value);
                }
                attr = (*attr).next;
            }
        }
        out
    }

    /// Attributes without a namespace, as (name, value) pairs.
    pub fn plain_attributes(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        // SAFETY: walking the attribute list of a valid element.
        unsafe {
            let mut attr = (*self.ptr).properties;
            while !attr.is_null() {
                if (*attr).ns.is_null() {
                    let value = x::xmlNodeGetContent(attr as *const x::xmlNode);
                    out.push((
                        cstr((*attr).name).unwrap_or_default(),
                        cstr(value).unwrap_or_default(),
                    ));
                    free(value);
                }
                attr = (*attr).next;
            }
        }
        out
    }

    /// Text nodes directly inside this element (comments excluded).
    pub fn own_text(&self) -> String {
        let mut out = String::new();
        // SAFETY: walking the child list of a valid node.
        unsafe {
            let mut child = (*self.ptr).children;
            while !child.is_null() {
                let t = (*child).type_;
                if t == x::xmlElementType_XML_TEXT_NODE
                    || t == x::xmlElementType_XML_CDATA_SECTION_NODE
                {
                    out.push_str(&cstr((*child).content).unwrap_or_default());
                }
                child = (*child).next;
            }
        }
        out
    }

    /// The namespace declarations in scope at this element (nearest wins),
    /// as (prefix, uri); prefix "" is the default namespace.
    pub fn in_scope_namespaces(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut node = self.ptr;
        // SAFETY: walking parent links and nsDef lists of a valid tree.
        unsafe {
            while !node.is_null() && (*node).type_ == x::xmlElementType_XML_ELEMENT_NODE {
                let mut ns = (*node).nsDef;
                while !ns.is_null() {
                    let prefix = cstr((*ns).prefix).unwrap_or_default();
                    if !out.iter().any(|(p, _)| p == &prefix) {
                        out.push((prefix, cstr((*ns).href).unwrap_or_default()));
                    }
                    ns = (*ns).next;
                }
                node = (*node).parent;
            }
        }
        out
    }

    /// Registers every `Id` attribute in this subtree as an XML ID (xenc
    /// RetrievalMethod references an EncryptedKey by its Id).
    pub fn register_ids_named(&self, doc: &Document, name: &str) {
        let cname = CString::new(name).expect("attribute name");
        for node in self.descendants() {
            // SAFETY: attributes of nodes of this document; xmlAddID copies.
            unsafe {
                let attr = x::xmlHasProp(node.ptr, cname.as_ptr() as *const u8);
                if attr.is_null() {
                    continue;
                }
                if let Some(value) = node
                    .attr(name)
                    .filter(|v| super::text::is_ncname(v))
                    .and_then(|v| CString::new(v).ok())
                {
                    x::xmlAddID(
                        ptr::null_mut(),
                        doc.raw(),
                        value.as_ptr() as *const u8,
                        attr,
                    );
                }
            }
        }
    }

    pub fn parent(&self) -> Option<Node> {
        // SAFETY: parent is NULL or a valid node of the same document.
        let p = unsafe { (*self.ptr).parent };
        // SAFETY: checked non-null.
        (!p.is_null() && unsafe { (*p).type_ } == x::xmlElementType_XML_ELEMENT_NODE)
            .then_some(Node { ptr: p })
    }

    /// Child elements, in document order.
    pub fn children(&self) -> Vec<Node> {
        let mut out = Vec::new();
        // SAFETY: walking the child list of a valid node.
        unsafe {
            let mut child = (*self.ptr).children;
            while !child.is_null() {
                if (*child).type_ == x::xmlElementType_XML_ELEMENT_NODE {
                    out.push(Node { ptr: child });
                }
                child = (*child).next;
            }
        }
        out
    }

    pub fn children_named(&self, ns: &str, local: &str) -> Vec<Node> {
        self.children()
            .into_iter()
            .filter(|c| c.is(ns, local))
            .collect()
    }

    pub fn child(&self, ns: &str, local: &str) -> Option<Node> {
        self.children().into_iter().find(|c| c.is(ns, local))
    }

    /// Concatenated text of the node and its descendants.
    pub fn text(&self) -> String {
        // SAFETY: xmlNodeGetContent returns a malloc'd copy or NULL.
        unsafe {
            let value = x::xmlNodeGetContent(self.ptr);
            let text = cstr(value).unwrap_or_default();
            free(value);
            text
        }
    }

    /// Every element of the subtree rooted here (including itself).
    pub fn descendants(&self) -> Vec<Node> {
        let mut out = vec![*self];
        let mut i = 0;
        while i < out.len() {
            let kids = out[i].children();
            out.extend(kids);
            i += 1;
        }
        out
    }
}

fn free(p: *mut u8) {
    if !p.is_null() {
        // SAFETY: p was allocated by libxml2's allocator.
        unsafe {
            if let Some(f) = x::xmlFree {
                f(p as *mut std::ffi::c_void);
            }
        }
    }
}
