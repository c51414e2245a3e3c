//! The synchronous embedder API: `add_to_linker_sync` and the sync bindings, with
//! the guest running on a plain thread (no Tokio runtime of the embedder's).

use std::sync::OnceLock;

use bytes::Bytes;
use http_body_util::Full;
use test_support::Origin;
use wasi_http_host::p2::bindings::sync::ProxyPre;
use wasi_http_host::{GuestState, WasiHttpCtx, WasiHttpView};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(Engine::default)
}

fn pre(name: &str) -> ProxyPre<GuestState> {
    let component = Component::from_file(engine(), crate::common::guest_path(name)).unwrap();
    let mut linker = Linker::new(engine());
    wasi_http_host::p2::add_to_linker_sync(&mut linker).unwrap();
    ProxyPre::new(linker.instantiate_pre(&component).unwrap()).unwrap()
}

/// Runs the guest synchronously on its own thread; returns the collected response.
async fn run_sync(name: &str, request: http::Request<Full<Bytes>>) -> test_support::Collected {
    let pre = pre(name);
    let mut store = Store::new(
        engine(),
        GuestState::new(
            wasmtime_wasi::WasiCtx::builder().build(),
            WasiHttpCtx::default(),
        ),
    );
    let mut view = store.data_mut().http();
    let req = view
        .new_incoming_request(http::uri::Scheme::HTTP, request)
        .unwrap();
    let (out, receiver) = view.new_response_outparam().unwrap();
    let guest = std::thread::spawn(move || {
        let proxy = pre.instantiate(&mut store)?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, req, out)
    });
    let response = receiver.await.expect("guest response");
    let collected = test_support::collect(response).await.expect("body");
    guest.join().unwrap().expect("guest ran without trapping");
    collected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_hello_and_echo() {
    let r = run_sync("hello", test_support::get("http://localhost/", &[])).await;
    assert_eq!(r.text(), "Hello, wasi:http!\n");
    let body = vec![b'x'; 3 * 1024 * 1024];
    let r = run_sync(
        "echo",
        crate::common::post("http://localhost/e", &[], body.clone()),
    )
    .await;
    assert_eq!(
        (r.header("x-echo-method"), r.body.len()),
        ("POST", body.len())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_outbound_request() {
    let origin = Origin::echo(None).await;
    let r = run_sync(
        "client",
        test_support::get("http://localhost/", &[("x-url", &origin.url("/from-sync"))]),
    )
    .await;
    assert_eq!(r.header("x-status"), "200", "{}", r.text());
    assert_eq!(r.header("x-resp-x-origin-path"), "/from-sync");
}
