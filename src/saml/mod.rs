//! The verification core: pure Rust (plus libxmlsec1), no PostgreSQL.
//! Each module is one step of the flow in DESIGN.md.

pub mod certificate;
pub mod reject;
pub mod request;
pub mod time;

pub use reject::{reject, Reason, Reject};
pub mod decode;
pub mod decrypt;
pub mod dom;
pub mod extract;
pub mod logout;
pub mod metadata;
pub mod response;
pub mod shape;
pub mod sign;
pub mod text;
pub mod tree;
pub mod validate;
pub mod verify;
