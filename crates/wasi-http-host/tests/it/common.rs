use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http_body_util::Full;
use test_support::Collected;
use wasi_http_client::{Client, ClientConfig, TlsOptions, TrustRoots};
use wasi_http_core::{ErrorCode, RequestContext};
use wasi_http_host::p2::ProxyService;
use wasi_http_host::{EngineConfig, ServiceConfig};
use wasmtime::component::Component;
use wasmtime::Engine;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn guest_path(name: &str) -> PathBuf {
    repo_root().join("guests/wasm").join(format!("{name}.wasm"))
}

/// One engine for the whole test binary (epoch ticker included).
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = EngineConfig::default();
        config.pooling = false;
        wasi_http_host::new_engine(&config).expect("engine").0
    })
}

/// Each guest is compiled once per test binary.
pub fn component(name: &str) -> Component {
    static CACHE: OnceLock<Mutex<HashMap<String, Component>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().expect("component cache");
    cache
        .entry(name.to_owned())
        .or_insert_with(|| Component::from_file(engine(), guest_path(name)).expect("compile guest"))
        .clone()
}

pub fn config() -> ServiceConfig {
    let mut config = ServiceConfig::default();
    config.guest_output = wasi_http_host::GuestOutput::Discard;
    config
}

pub fn service(name: &str) -> ProxyService {
    service_with(name, config())
}

pub fn service_with(name: &str, config: ServiceConfig) -> ProxyService {
    ProxyService::new(engine(), &component(name), config).expect("service")
}

/// A service whose outgoing client uses `tls`.
pub fn service_with_tls(name: &str, tls: TlsOptions) -> ProxyService {
    let mut client = ClientConfig::default();
    client.tls = Some(tls.build().expect("tls"));
    service_with_client(name, client)
}

/// A service whose outgoing client trusts only the test CA (for TLS origins).
pub fn service_trusting(name: &str, tls: &test_support::TestTls) -> ProxyService {
    let mut options = TlsOptions::default();
    options.roots = TrustRoots::Empty;
    options.extra_roots.push(tls.ca.clone());
    service_with_tls(name, options)
}

/// A service whose outgoing requests use a client with `client` settings.
pub fn service_with_client(name: &str, client: ClientConfig) -> ProxyService {
    let mut config = config();
    config.hooks = Arc::new(Client::new(client));
    service_with(name, config)
}

/// Handles `request` in-process and collects the response.
pub async fn call(
    service: &ProxyService,
    request: http::Request<Full<Bytes>>,
) -> Result<Collected, ErrorCode> {
    let response = service
        .handle(request, RequestContext::new(http::uri::Scheme::HTTP))
        .await;
    test_support::collect(response).await
}

pub async fn call_ok(service: &ProxyService, request: http::Request<Full<Bytes>>) -> Collected {
    call(service, request).await.expect("response body")
}

pub fn post(
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> http::Request<Full<Bytes>> {
    let mut builder = http::Request::post(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::new(body.into())).expect("request")
}

pub use test_support::get;
