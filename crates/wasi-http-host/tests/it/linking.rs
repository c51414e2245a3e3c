//! Guests built against older 0.2.N WIT, mixing minor versions, link against the
//! 0.2.12 host; imports beyond the proxy world link with `add_to_linker_*_with_wasi`.

use wasi_http_host::GuestState;
use wasmtime::component::{Component, Linker};

const MIXED: &str = r#"
(component
  (import "wasi:clocks/monotonic-clock@0.2.3" (instance
    (export "now" (func (result u64)))))
  (import "wasi:cli/environment@0.2.0" (instance
    (export "get-arguments" (func (result (list string))))))
  (import "wasi:random/random@0.2.9" (instance
    (export "get-random-u64" (func (result u64)))))
)
"#;

#[test]
fn mixed_minor_versions_and_cli_imports_link() {
    let engine = crate::common::engine();
    let component = Component::new(engine, wat::parse_str(MIXED).unwrap()).unwrap();

    let mut full: Linker<GuestState> = Linker::new(engine);
    wasi_http_host::p2::add_to_linker_async_with_wasi(&mut full).unwrap();
    full.instantiate_pre(&component)
        .expect("links with full WASI");

    // The proxy-only linker has no wasi:cli/environment, and says which import is missing.
    let mut proxy: Linker<GuestState> = Linker::new(engine);
    wasi_http_host::p2::add_to_linker_async(&mut proxy).unwrap();
    let Err(err) = proxy.instantiate_pre(&component) else {
        panic!("the proxy-only linker must not provide wasi:cli/environment");
    };
    assert!(
        format!("{err:?}").contains("wasi:cli/environment"),
        "{err:?}"
    );

    let mut sync: Linker<GuestState> = Linker::new(engine);
    wasi_http_host::p2::add_to_linker_sync_with_wasi(&mut sync).unwrap();
    sync.instantiate_pre(&component)
        .expect("links with sync WASI");
}
