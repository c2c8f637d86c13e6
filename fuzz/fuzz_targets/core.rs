// The verification core (src/saml), compiled into each fuzz target by path:
// it is pure Rust plus libxmlsec1, with no PostgreSQL symbols to link.
#[allow(dead_code, unused_imports)]
#[path = "../../src/saml/mod.rs"]
pub mod saml;
