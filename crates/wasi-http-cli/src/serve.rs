//! `wasi-http serve`: the component, the engine for its version, the service, the
//! server, metrics, and the signals that stop it.

use anyhow::{bail, Context, Result};

use wasi_http_server::{Server, ServerConfig};

use crate::args::ServeArgs;
use crate::config_file::AppPlan;

pub(crate) fn serve(
    args: ServeArgs,
    app: Option<AppPlan>,
    argv: Vec<std::ffi::OsString>,
    inherited: Option<std::net::TcpListener>,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    let tracer = tracer(&args)?;
    let served = runtime.block_on(serve_on(args, app, argv, inherited, tracer.clone()));
    // Spans still queued go out (a few seconds at most), outside the runtime.
    if let Some(tracer) = tracer {
        tracer.shutdown();
    }
    served
}

/// The OTLP tracer the flags or the standard variables ask for, if any.
fn tracer(args: &ServeArgs) -> Result<Option<wasi_http_otel::OtlpTracer>> {
    let url = match (
        &args.otlp_endpoint,
        std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
    ) {
        (Some(base), _) => wasi_http_otel::OtlpConfig::traces_url(base),
        (None, Ok(traces)) if !traces.is_empty() => traces,
        _ => match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            Ok(base) if !base.is_empty() => wasi_http_otel::OtlpConfig::traces_url(&base),
            _ => return Ok(None),
        },
    };
    let mut config = wasi_http_otel::OtlpConfig::new(url.clone());
    config.sample_ratio = args.trace_sample_ratio;
    let tracer = wasi_http_otel::OtlpTracer::start(config).context("--otlp-endpoint")?;
    say!("Exporting traces to {url}");
    Ok(Some(tracer))
}

async fn serve_on(
    args: ServeArgs,
    app: Option<AppPlan>,
    argv: Vec<std::ffi::OsString>,
    inherited: Option<std::net::TcpListener>,
    tracer: Option<wasi_http_otel::OtlpTracer>,
) -> Result<()> {
    let external = match &tracer {
        Some(tracer) => {
            let stats = tracer.stats();
            let (a, b, c) = (stats.clone(), stats.clone(), stats);
            use std::sync::atomic::Ordering::Relaxed;
            vec![
                wasi_http_server::ExternalCounter::new(
                    "trace_spans_exported",
                    "Spans the trace collector accepted",
                    move || a.exported.load(Relaxed),
                ),
                wasi_http_server::ExternalCounter::new(
                    "trace_spans_dropped",
                    "Spans dropped: the export queue was full or an export failed",
                    move || b.dropped.load(Relaxed),
                ),
                wasi_http_server::ExternalCounter::new(
                    "trace_export_failures",
                    "Span exports that failed",
                    move || c.failed_exports.load(Relaxed),
                ),
            ]
        }
        None => Vec::new(),
    };
    let metrics = wasi_http_server::Metrics::with_external(None, external);
    let admission = crate::calls::AdmissionCell::default();
    let served = match &app {
        Some(plan) => crate::app::build_app(plan, &args, &metrics, &admission).await?,
        None => crate::app::build_one(&args).await?,
    };
    metrics.set_clients(served.clients);
    let live = crate::reload::Live::new(served.dispatch);
    let certificate = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            wasi_http_server::ServerCertificate::load(cert, key).context("--tls-cert/--tls-key")?,
        ),
        _ => None,
    };
    let mut server_config = server_config(&args, metrics.clone(), certificate.as_ref())?;
    server_config.tracer =
        tracer.map(|t| std::sync::Arc::new(t) as std::sync::Arc<dyn wasi_http_core::Tracer>);
    let https = server_config.tls.is_some();
    let server = match inherited {
        Some(listener) => {
            let server = Server::from_listener(listener, server_config)?;
            tracing::info!(addr = %server.local_addr(), "serving on an inherited socket; --addr is not used");
            server
        }
        None => Server::bind(args.addr, server_config)?,
    };
    // Internal calls take their slots where requests from the network do.
    let _ = admission.set(server.admission());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(addr) = args.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the metrics address {addr}"))?;
        let mut stop = stop_rx.clone();
        say!("Metrics on http://{}/metrics", listener.local_addr()?);
        tokio::spawn(wasi_http_server::serve_metrics(
            listener,
            metrics.clone(),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        ));
    }
    let triggers = crate::reload::Triggers::listen(args.watch, &args, app.as_ref());
    let scheme = if https { "https" } else { "http" };
    say!("Serving HTTP on {scheme}://{}/", server.local_addr());
    // SIGHUP (and, with --watch, changed files) reloads what serves.
    let reloader = crate::reload::Reloader {
        live: live.clone(),
        argv,
        started: args,
        metrics,
        certificate,
        admission,
    };
    let reloading = tokio::spawn(async move { reloader.run(triggers).await });
    server.run(live, shutdown_signal()).await?;
    reloading.abort();
    // The metrics listener answers until the drain is over: /readyz says 503
    // and /healthz 200 through the shutdown delay and the drain.
    let _ = stop_tx.send(true);
    drop(stop_rx);
    say!("Shut down.");
    Ok(())
}

fn server_config(
    args: &ServeArgs,
    metrics: wasi_http_server::Metrics,
    certificate: Option<&wasi_http_server::ServerCertificate>,
) -> Result<ServerConfig> {
    if args.max_concurrent_requests > args.max_instances as usize && !args.no_pooling {
        bail!(
            "--max-concurrent-requests ({}) exceeds --max-instances ({}): requests past the \
             instance slots would fail; raise --max-instances or lower the request limit",
            args.max_concurrent_requests,
            args.max_instances
        );
    }
    let mut config = ServerConfig::default();
    if let Some(certificate) = certificate {
        config.tls = Some(
            certificate
                .server_config()
                .context("--tls-cert/--tls-key")?,
        );
    }
    config.workers = args.workers;
    config.max_connections =
        crate::fds::max_connections(args.max_connections, args.metrics_addr.is_some());
    config.max_concurrent_requests = args.max_concurrent_requests;
    config.max_queued_requests = args.max_queued_requests;
    config.queue_timeout = args.queue_timeout;
    config.header_read_timeout = args.header_read_timeout;
    config.idle_timeout = args.idle_timeout;
    config.response_write_timeout =
        (!args.response_write_timeout.is_zero()).then_some(args.response_write_timeout);
    config.max_streams_per_connection = args.max_streams_per_connection;
    config.max_header_bytes = usize::try_from(args.max_header_bytes).unwrap_or(usize::MAX);
    config.max_request_body_bytes = (args.max_request_body > 0).then_some(args.max_request_body);
    config.request_body_timeout = args.request_body_timeout;
    config.shutdown_timeout = args.shutdown_timeout;
    config.shutdown_delay = args.shutdown_delay;
    config.access_log = !args.no_access_log;
    config.metrics = metrics;
    Ok(config)
}

/// Resolves on the first SIGINT or SIGTERM; a second one exits at once.
async fn shutdown_signal() {
    first_signal().await;
    say!("Shutting down: finishing in-flight requests (signal again to exit now)");
    tokio::spawn(async {
        first_signal().await;
        std::process::exit(130);
    });
}

#[cfg(unix)]
async fn first_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn first_signal() {
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal handling available: serve until killed.
        std::future::pending::<()>().await;
    }
}
