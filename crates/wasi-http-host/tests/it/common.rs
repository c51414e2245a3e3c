use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http_body_util::Full;
use test_support::Collected;
use wasi_http_client::{Client, ClientConfig, TlsOptions, TrustRoots};
use wasi_http_core::ErrorCode;
use wasi_http_host::p2::ProxyService;
use wasi_http_host::{AnyService, EngineConfig, ServiceConfig};
use wasmtime::component::Component;
use wasmtime::Engine;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn guest_path(name: &str) -> PathBuf {
    repo_root().join("guests/wasm").join(format!("{name}.wasm"))
}

/// One engine per WASI version for the whole test binary (epoch ticker included).
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| make_engine(false))
}

/// The engine for WASI 0.3 components (the component model's async ABI).
pub fn p3_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| make_engine(true))
}

fn make_engine(p3: bool) -> Engine {
    let mut config = EngineConfig::default();
    config.pooling = false;
    config.component_model_async = p3;
    wasi_http_host::new_engine(&config).expect("engine").0
}

/// Whether a guest's name is a WASI 0.3 one (`p3-echo`, ...).
pub fn is_p3(name: &str) -> bool {
    name.starts_with("p3-")
}

/// The engine for `name`'s version.
pub fn engine_for(name: &str) -> &'static Engine {
    if is_p3(name) {
        p3_engine()
    } else {
        engine()
    }
}

/// Each guest is compiled once per test binary.
pub fn component(name: &str) -> Component {
    static CACHE: OnceLock<Mutex<HashMap<String, Component>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().expect("component cache");
    cache
        .entry(name.to_owned())
        .or_insert_with(|| {
            Component::from_file(engine_for(name), guest_path(name)).expect("compile guest")
        })
        .clone()
}

pub fn config() -> ServiceConfig {
    let mut config = ServiceConfig::default();
    config.guest_output = wasi_http_host::GuestOutput::Discard;
    config
}

/// The service for guest `name` (a 0.2 `ProxyService`, or a 0.3 `Service` for a
/// `p3-` guest).
pub fn service(name: &str) -> AnyService {
    service_with(name, config())
}

pub fn service_with(name: &str, config: ServiceConfig) -> AnyService {
    let component = component(name);
    if is_p3(name) {
        AnyService::P3(
            wasi_http_host::p3::Service::new(p3_engine(), &component, config).expect("service"),
        )
    } else {
        AnyService::P2(ProxyService::new(engine(), &component, config).expect("service"))
    }
}

/// A service whose outgoing client uses `tls`.
pub fn service_with_tls(name: &str, tls: TlsOptions) -> AnyService {
    let mut client = ClientConfig::default();
    client.tls = Some(tls.build().expect("tls"));
    service_with_client(name, client)
}

/// A service whose outgoing client trusts only the test CA (for TLS origins).
pub fn service_trusting(name: &str, tls: &test_support::TestTls) -> AnyService {
    let mut options = TlsOptions::default();
    options.roots = TrustRoots::Empty;
    options.extra_roots.push(tls.ca.clone());
    service_with_tls(name, options)
}

/// A service whose outgoing requests use a client with `client` settings.
pub fn service_with_client(name: &str, client: ClientConfig) -> AnyService {
    let mut config = config();
    config.hooks = Arc::new(Client::new(client));
    service_with(name, config)
}

/// Handles `request` in-process and collects the response.
pub async fn call<B>(
    service: &impl Handler,
    request: http::Request<B>,
) -> Result<Collected, ErrorCode>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<ErrorCode>,
{
    let response = service
        .handle(request, RequestContext::new(http::uri::Scheme::HTTP))
        .await;
    test_support::collect(response).await
}

pub async fn call_ok(service: &impl Handler, request: http::Request<Full<Bytes>>) -> Collected {
    call(service, request).await.expect("response body")
}

/// Defines `p2_<name>` and `p3_<name>`: the same test body run on the 0.2 guest
/// `guest` and on its 0.3 twin `p3-<guest>`, as `async |guest: &str| { ... }`.
macro_rules! both {
    ($(#[$meta:meta])* $name:ident, $guest:literal, $body:expr) => {
        paste::paste! {
            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn [<p2_ $name>]() {
                ($body)($guest).await
            }
            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn [<p3_ $name>]() {
                ($body)(concat!("p3-", $guest)).await
            }
        }
    };
}
pub(crate) use both;

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
pub use wasi_http_core::{Handler, RequestContext};
