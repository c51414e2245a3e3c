//! The settings of `wasi-http serve` as a TOML file gives them, and the parsers
//! of setting values (durations, sizes, DNS servers). Input here is untrusted
//! text: every function returns an error for bad input, never panics (the fuzz
//! target `config` holds it to that).
//!
//! A file's keys are the command line's long flag names; which names exist is the
//! command line's business, not this crate's.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod file;
mod routes;
mod values;

pub use file::{
    parse_app, parse_settings, AppFile, ComponentSpec, RouteSpec, Setting, SettingValue,
    SettingsError,
};
pub use routes::{HostPattern, Matched, PathPattern, Route, RouteConflict, Router};
pub use values::{parse_dns_server, parse_duration, parse_memory, parse_size};
