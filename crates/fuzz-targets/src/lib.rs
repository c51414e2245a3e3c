//! The fuzz targets' bodies: each takes arbitrary bytes, drives one piece of
//! code that untrusted input reaches, and asserts what must hold for any input
//! (beyond "no panic"). `fuzz/` runs them under libFuzzer (cargo-fuzz); this
//! crate's test replays their seed corpora and every committed crash input on
//! stable Rust. See `fuzz/README.md`.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod config;
mod error_code;
mod fields;
mod headers;
mod policy;
mod request_head;
mod uri;

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target: its name (the file under `fuzz/fuzz_targets/`) and its body.
pub const TARGETS: &[(&str, Target)] = &[
    ("fields", fields::run),
    ("uri", uri::run),
    ("headers", headers::run),
    ("error_code", error_code::run),
    ("policy", policy::run),
    ("config", config::run),
    ("request_head", request_head::run),
];

pub use config::run as config;
pub use error_code::run as error_code;
pub use fields::run as fields;
pub use headers::run as headers;
pub use policy::run as policy;
pub use request_head::run as request_head;
pub use uri::run as uri;

/// Bytes as text, lossily: most targets take strings.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
