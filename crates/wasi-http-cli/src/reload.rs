//! Reload without dropping a request: on SIGHUP (or, with `--watch`, when the
//! settings file, a component or a TLS file changes) the settings are read
//! again and everything that serves is built anew on a thread of its own; only
//! if all of it loads does it replace what serves, in one atomic swap. A request
//! keeps the version it started on. A bad file is logged with its cause and the
//! old version keeps serving.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body::Body;
use wasi_http_core::{ErrorCode, Handler, HostBody, RequestContext};
use wasi_http_host::AnyService;

use crate::app::{Dispatch, Served};
use crate::args::ServeArgs;
use crate::config_file::{AppPlan, Parsed};
use crate::Command;

/// What serves now; swapped whole by a reload.
#[derive(Clone)]
pub(crate) struct Live(Arc<ArcSwap<Dispatch>>);

impl Live {
    pub(crate) fn new(dispatch: Dispatch) -> Self {
        Live(Arc::new(ArcSwap::from_pointee(dispatch)))
    }
}

impl Handler for Live {
    async fn handle<B>(
        &self,
        request: http::Request<B>,
        cx: RequestContext,
    ) -> http::Response<HostBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<ErrorCode>,
    {
        // Held for the request: a reload meanwhile does not take its version away.
        let dispatch = self.0.load_full();
        // Straight to the service: every layer of futures between the server
        // and the service copies the request into its own (callgrind: about
        // 200 instructions a layer).
        match &*dispatch {
            Dispatch::One(AnyService::P2(service)) => service.handle(request, cx).await,
            Dispatch::One(AnyService::P3(service)) => service.handle(request, cx).await,
            Dispatch::One(service) => service.handle(request, cx).await,
            // Boxed: an app's future (routing, then a service's) would
            // otherwise size every request's future, which is moved when its
            // task is spawned: one allocation where routing happens.
            Dispatch::App(app) => Box::pin(app.handle(request, cx)).await,
        }
    }
}

/// What a reload needs besides the files.
pub(crate) struct Reloader {
    pub(crate) live: Live,
    pub(crate) argv: Vec<OsString>,
    /// The server-wide settings the server started with.
    pub(crate) started: ServeArgs,
    pub(crate) metrics: wasi_http_server::Metrics,
    pub(crate) certificate: Option<wasi_http_server::ServerCertificate>,
    /// The server's admission, for the internal calls of the apps it builds.
    pub(crate) admission: crate::calls::AdmissionCell,
}

impl Reloader {
    /// Reloads on every SIGHUP (and file change, with `watch`) until the
    /// process ends; triggers that come during a reload make one more after it.
    pub(crate) async fn run(self, triggers: Triggers) {
        let Triggers {
            tx,
            mut rx,
            watch,
            mut watcher,
        } = triggers;
        while let Some(why) = rx.recv().await {
            // Editors write a file in several steps: wait for them to settle.
            tokio::time::sleep(Duration::from_millis(200)).await;
            while rx.try_recv().is_ok() {}
            tracing::info!(trigger = why, "reloading");
            match self.reload().await {
                Ok((summary, plan)) => {
                    tracing::info!(%summary, "reloaded");
                    if watch {
                        // Components may have moved: watch what serves now.
                        watcher = watch_files(&self.started, plan.as_ref(), tx.clone());
                    }
                }
                Err(e) => tracing::error!(
                    error = %format!("{e:#}"),
                    "reload failed; the previous version keeps serving"
                ),
            }
        }
        drop(watcher);
    }

    /// One reload: the files read again and everything built anew, then swapped.
    async fn reload(&self) -> Result<(String, Option<AppPlan>)> {
        let Parsed { cli, app } = crate::config_file::parse_cli_checked(self.argv.clone())?;
        let Command::Serve(args) = cli.command else {
            return Err(anyhow!("internal: reload read another command"));
        };
        for change in restart_only_changes(&self.started, &args) {
            tracing::warn!(
                setting = change,
                "`{change}` changed: it takes effect at the next restart, not on reload"
            );
        }
        // Everything that can fail, before anything changes.
        let staged = match &self.certificate {
            Some(certificate) => Some(
                certificate
                    .stage()
                    .context("--tls-cert/--tls-key: the files do not load")?,
            ),
            None => None,
        };
        let metrics = self.metrics.clone();
        let (plan, served) = build_elsewhere(args, app, metrics, self.admission.clone()).await?;
        if let Some((certificate, staged)) = self.certificate.as_ref().zip(staged) {
            certificate.install(staged);
        }
        let summary = describe(&served, plan.as_ref());
        self.metrics.set_clients(served.clients);
        self.live.0.store(Arc::new(served.dispatch));
        Ok((summary, plan))
    }
}

/// Builds on a thread with a runtime of its own: compiling a large component
/// takes seconds, which the process's other work must not wait for.
async fn build_elsewhere(
    args: ServeArgs,
    app: Option<AppPlan>,
    metrics: wasi_http_server::Metrics,
    admission: crate::calls::AdmissionCell,
) -> Result<(Option<AppPlan>, Served)> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("wasi-http-reload".into())
        .spawn(move || {
            let built = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the reload's runtime")
                .and_then(|rt| {
                    rt.block_on(async {
                        let served = match &app {
                            Some(plan) => {
                                crate::app::build_app(plan, &args, &metrics, &admission).await?
                            }
                            None => crate::app::build_one(&args).await?,
                        };
                        Ok((app, served))
                    })
                });
            let _ = tx.send(built);
        })
        .context("starting the reload's thread")?;
    rx.await.context("the reload's thread died")?
}

fn describe(served: &Served, plan: Option<&AppPlan>) -> String {
    match plan {
        Some(plan) => format!(
            "{} components, {} routes",
            plan.components.len(),
            plan.routes.len()
        ),
        None => match &served.dispatch {
            Dispatch::One(_) => "one component".into(),
            Dispatch::App(_) => "an app".into(),
        },
    }
}

/// The server-wide settings that differ between two starts, among those a
/// reload cannot apply (listeners, worker threads, limits built into the
/// server).
fn restart_only_changes(old: &ServeArgs, new: &ServeArgs) -> Vec<&'static str> {
    let mut changed = Vec::new();
    macro_rules! compare {
        ($($field:ident => $name:literal),* $(,)?) => {
            $(if format!("{:?}", old.$field) != format!("{:?}", new.$field) {
                changed.push($name);
            })*
        };
    }
    compare!(
        addr => "addr",
        listen_fd => "listen-fd",
        workers => "workers",
        max_connections => "max-connections",
        max_concurrent_requests => "max-concurrent-requests",
        max_queued_requests => "max-queued-requests",
        queue_timeout => "queue-timeout",
        header_read_timeout => "header-read-timeout",
        idle_timeout => "idle-timeout",
        response_write_timeout => "response-write-timeout",
        max_streams_per_connection => "max-streams-per-connection",
        max_header_bytes => "max-header-bytes",
        max_request_body => "max-request-body",
        request_body_timeout => "request-body-timeout",
        shutdown_timeout => "shutdown-timeout",
        shutdown_delay => "shutdown-delay",
        metrics_addr => "metrics-addr",
        otlp_endpoint => "otlp-endpoint",
        trace_sample_ratio => "trace-sample-ratio",
        no_access_log => "no-access-log",
        max_instances => "max-instances",
        no_pooling => "no-pooling",
        tls_cert => "tls-cert",
        tls_key => "tls-key",
    );
    changed
}

/// What starts a reload: SIGHUP, and with `--watch` a changed file. Both are
/// set up before the server says it serves, so that a signal or a change that
/// comes at once is not lost (an early SIGHUP would otherwise end the process:
/// the signal's default action).
pub(crate) struct Triggers {
    tx: tokio::sync::mpsc::Sender<&'static str>,
    rx: tokio::sync::mpsc::Receiver<&'static str>,
    watch: bool,
    watcher: Option<notify::RecommendedWatcher>,
}

impl Triggers {
    /// Starts listening (in a runtime).
    pub(crate) fn listen(watch: bool, args: &ServeArgs, plan: Option<&AppPlan>) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel::<&'static str>(1);
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::hangup()) {
                Ok(mut hup) => {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        while hup.recv().await.is_some() {
                            // Full: a reload is already due.
                            let _ = tx.try_send("SIGHUP");
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "cannot listen for SIGHUP: no reload on it"),
            }
        }
        let watcher = if watch {
            watch_files(args, plan, tx.clone())
        } else {
            None
        };
        Triggers {
            tx,
            rx,
            watch,
            watcher,
        }
    }
}

/// Watches the files a reload reads (the settings file, each component, the
/// TLS files): their directories, so that files replaced by a rename (what
/// editors and deploy tools do) are seen too.
fn watch_files(
    args: &ServeArgs,
    plan: Option<&AppPlan>,
    tx: tokio::sync::mpsc::Sender<&'static str>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let mut files: BTreeSet<PathBuf> = BTreeSet::new();
    files.extend(args.config.clone());
    files.extend(args.component.clone());
    files.extend(args.tls_cert.clone());
    files.extend(args.tls_key.clone());
    for c in plan.iter().flat_map(|p| p.components.iter()) {
        files.extend(c.args.component.clone());
    }
    let files: BTreeSet<PathBuf> = files
        .into_iter()
        .map(|f| std::fs::canonicalize(&f).unwrap_or(f))
        .collect();
    let watched = files.clone();
    let handler = move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        if event.paths.iter().any(|p| watched.contains(p)) {
            let _ = tx.try_send("file changed");
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "--watch: cannot watch files; reload with SIGHUP");
            return None;
        }
    };
    let dirs: BTreeSet<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(PathBuf::from))
        .collect();
    for dir in dirs {
        if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "--watch: cannot watch a directory");
        }
    }
    Some(watcher)
}
