//! Marks the corpus tests ignored (cfg `shared_corpus` unset) when `../shared`
//! is not beside the checkout, so the test runner counts them as ignored
//! instead of passed.

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(shared_corpus)");
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared");
    for corpus in ["conformance/cases.json", "interop/cases.json"] {
        println!("cargo::rerun-if-changed={}", shared.join(corpus).display());
    }
    if shared.join("conformance/cases.json").is_file()
        && shared.join("interop/cases.json").is_file()
    {
        println!("cargo::rustc-cfg=shared_corpus");
    }
}
