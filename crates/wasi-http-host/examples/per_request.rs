//! The per-request path of a service (store, instantiate, handle, drop; or a reused
//! instance) on one component, N times in a row on one thread:
//! `benches/callgrind.sh` runs it under callgrind twice and reports the
//! instructions per request, which stay stable where wall-clock numbers on a
//! shared machine do not. The component's WASI version is detected: a 0.2 proxy
//! gets `p2::ProxyService`, a 0.3 service `p3::Service` (which always reuses).
//! Built without the `p3` feature (`--no-default-features --features p2`), it
//! measures what a 0.2-only embedder pays: Wasmtime without its async ABI.
//!
//! Usage: per_request COMPONENT N [reuse]

use http_body_util::BodyExt;
use wasi_http_core::{Handler, RequestContext};
use wasi_http_host::{AnyService, EngineConfig, GuestOutput, InstanceReuse, ServiceConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: [PER_REQUEST_COW=1] per_request COMPONENT N [reuse]")?;
    let n: u32 = args.next().ok_or("missing N")?.parse()?;
    let reuse = args.next().as_deref() == Some("reuse");

    let bytes = std::fs::read(&path)?;
    let kind = wasi_http_host::detect(&bytes)?;
    let mut engine_config = EngineConfig::default();
    kind.configure(&mut engine_config);
    // PER_REQUEST_COW=1: guest memory mapped copy-on-write instead of copied in.
    if std::env::var_os("PER_REQUEST_COW").is_some_and(|v| v == "1") {
        engine_config.memory_init_cow = true;
    }
    let (engine, _pooling) = wasi_http_host::new_engine(&engine_config)?;
    let component = wasmtime::component::Component::new(&engine, &bytes)?;
    let mut config = ServiceConfig::default();
    config.guest_output = GuestOutput::Discard;
    if reuse {
        config.instance_reuse = Some(InstanceReuse::new(u32::MAX));
    }
    let service = match kind {
        #[cfg(feature = "p3")]
        wasi_http_host::ComponentKind::HttpP3 { .. } => AnyService::P3(
            wasi_http_host::p3::Service::new(&engine, &component, config)?,
        ),
        _ => AnyService::P2(wasi_http_host::p2::ProxyService::new(
            &engine, &component, config,
        )?),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        for _ in 0..n {
            let request = http::Request::get("http://localhost/")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .map_err(|e| e.to_string())?;
            let cx = RequestContext::new(http::uri::Scheme::HTTP);
            let response = service.handle(request, cx).await;
            if response.status() != 200 {
                return Err(format!("status {}", response.status()));
            }
            response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(())
    })?;
    Ok(())
}
