//! `wasi-http`: glue between the command line and the `wasi-http-host` library.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueHint};
use wasi_http_cache::{CacheOutcome, ComponentCache, ComponentCacheConfig};
use wasi_http_client as client;
use wasi_http_host::{AnyService, ComponentKind, EngineConfig, ServiceConfig};
use wasi_http_server::{Server, ServerConfig};
use wasmtime::component::Component;

/// jemalloc instead of the system allocator: a request makes about 48 allocations,
/// and glibc's malloc spent 8k instructions per reused-instance request on them
/// (jemalloc: 8% fewer instructions in all, 5% more requests per second over ten
/// alternating rounds, memory under load within the same spread; see
/// docs/performance.md). The library leaves the choice to its embedder.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod logging;
use logging::LogFormat;

/// The demo component served when no COMPONENT is given (the project's hello guest).
const DEMO_COMPONENT: &[u8] = include_bytes!("../../../guests/wasm/hello.wasm");

#[derive(Parser)]
#[command(name = "wasi-http", version, about = "Run wasi:http/proxy components")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a wasi:http/proxy component over HTTP/1.1 and HTTP/2 (h2c, or TLS with
    /// --tls-cert/--tls-key).
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The component (.wasm). Without it, an embedded demo component is served.
    #[arg(value_hint = ValueHint::FilePath)]
    component: Option<PathBuf>,
    /// Read settings from this TOML file: keys are these flags' long names
    /// (`max-memory = "512MiB"`, `allow-outbound = ["api.example.com"]`); flags given
    /// on the command line override it; unknown keys are errors.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key", value_hint = ValueHint::FilePath)]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert", value_hint = ValueHint::FilePath)]
    tls_key: Option<PathBuf>,
    /// Worker threads, each with its own event loop (0: one per core).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Longest a guest may run for one request, e.g. `30s`, `500ms` (0: no limit).
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    request_timeout: Duration,
    /// Most linear memory per instance, e.g. `512MiB`, `1GiB` (at most 4GiB).
    #[arg(long, default_value = "1GiB", value_parser = parse_memory)]
    max_memory: usize,
    /// Fuel (about one unit per wasm instruction) a guest may burn per request;
    /// past it the guest is stopped with a 500. Costs some speed. Default: no limit.
    #[arg(long)]
    fuel: Option<u64>,
    /// Reuse each instance for up to N requests (one at a time) instead of a fresh
    /// instance per request; an instance is dropped after any trap. Faster, but a
    /// guest sees memory left by earlier requests: only for guests written for it.
    /// 0: a fresh instance per request.
    #[arg(long, default_value_t = 0, value_name = "N")]
    instance_reuse: u32,
    /// With --instance-reuse, drop instances idle for this long.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    instance_idle_timeout: Duration,
    /// Most open client connections; further ones are closed at once.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// Most requests with a running guest at once (at most --max-instances).
    #[arg(long, default_value_t = 1000)]
    max_concurrent_requests: usize,
    /// Most requests waiting for a free slot; beyond it, 503 with retry-after.
    #[arg(long, default_value_t = 1000)]
    max_queued_requests: usize,
    /// Longest a request waits for a free slot before 503.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    queue_timeout: Duration,
    /// Longest time to receive a request head (and, with TLS, the handshake);
    /// past it the connection is closed.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    header_read_timeout: Duration,
    /// Close a connection idle (no request, no traffic) for this long.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Largest request header section; beyond it, 431.
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    max_header_bytes: u64,
    /// Largest request body, counted while streaming; beyond it, 413 (0: no limit).
    #[arg(long, default_value = "100MiB", value_parser = parse_size)]
    max_request_body: u64,
    /// Longest wait between two pieces of a request body; past it, 408.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    request_body_timeout: Duration,
    /// On SIGINT/SIGTERM, how long in-flight requests may take to finish.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    shutdown_timeout: Duration,
    /// Serve Prometheus metrics (`/metrics`) and a health check (`/healthz`) here.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Do not log one line per request.
    #[arg(long)]
    no_access_log: bool,
    /// Where guests' stdout and stderr go: log lines tagged with the request id,
    /// the server's own stdout/stderr, or nowhere.
    #[arg(long, value_enum, default_value_t = Output::Log)]
    guest_output: Output,
    /// Most guest output logged per request (the rest is dropped).
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    guest_output_limit: u64,
    /// Most concurrent instances (pooling allocator slots).
    #[arg(long, default_value_t = 1000)]
    max_instances: u32,
    /// Most resources (fields, bodies, streams, ...) one instance may hold at once.
    #[arg(long, default_value_t = 4096)]
    max_resources: usize,
    /// Allow outgoing requests only to these destinations (repeatable):
    /// `[http[s]://]host[:port]`, `*.domain`, `*`, or an IP network in CIDR form.
    /// Without it, any destination outside the blocked networks.
    #[arg(long = "allow-outbound", value_name = "RULE")]
    allow_outbound: Vec<client::DestinationRule>,
    /// Allow outgoing requests to this network even though it is blocked
    /// (repeatable), e.g. `127.0.0.1/32` for a sidecar on loopback.
    #[arg(long = "allow-network", value_name = "CIDR")]
    allow_network: Vec<ipnet::IpNet>,
    /// Also block this network for outgoing requests (repeatable). Loopback,
    /// private, link-local, CGNAT and unique-local networks are blocked by default.
    #[arg(long = "block-network", value_name = "CIDR")]
    block_network: Vec<ipnet::IpNet>,
    /// Outgoing DNS resolution timeout.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    dns_timeout: Duration,
    /// Resolve outgoing host names with these DNS servers (`IP` or `IP:PORT`,
    /// repeatable) instead of the operating system's resolver.
    #[arg(long = "dns-server", value_name = "ADDR", value_parser = parse_dns_server)]
    dns_server: Vec<SocketAddr>,
    /// Outgoing TCP connect timeout (also the longest wait in a queue for a
    /// connection) when the guest sets none.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// Outgoing TLS handshake timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    tls_handshake_timeout: Duration,
    /// Outgoing wait for the response head when the guest sets none.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    first_byte_timeout: Duration,
    /// Outgoing wait between response body frames when the guest sets none.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    between_bytes_timeout: Duration,
    /// Longest outgoing timeout a guest may set in its request options; longer ones
    /// are cut to it.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    max_guest_timeout: Duration,
    /// How long an idle outgoing keep-alive connection is kept for reuse.
    #[arg(long, default_value = "90s", value_parser = parse_duration)]
    pool_idle_timeout: Duration,
    /// Trust these CA certificates (PEM file, repeatable) for outgoing HTTPS.
    #[arg(long = "outbound-ca", value_name = "FILE", value_hint = ValueHint::FilePath)]
    outbound_ca: Vec<PathBuf>,
    /// Base set of trusted authorities for outgoing HTTPS.
    #[arg(long, value_enum, default_value_t = Trust::Webpki)]
    outbound_trust: Trust,
    /// Client certificate chain (PEM) for outgoing mutual TLS; needs --outbound-client-key.
    #[arg(long, value_name = "FILE", requires = "outbound_client_key", value_hint = ValueHint::FilePath)]
    outbound_client_cert: Option<PathBuf>,
    /// Private key (PEM) of --outbound-client-cert.
    #[arg(long, value_name = "FILE", requires = "outbound_client_cert", value_hint = ValueHint::FilePath)]
    outbound_client_key: Option<PathBuf>,
    /// Accept any server certificate on outgoing HTTPS. For local testing only.
    #[arg(long)]
    danger_outbound_accept_invalid_certs: bool,
    /// Speak HTTP/2 with prior knowledge (h2c) to these plain-http destinations
    /// (repeatable, same syntax as --allow-outbound), e.g. a local gRPC backend.
    #[arg(long = "outbound-h2c", value_name = "RULE")]
    outbound_h2c: Vec<client::DestinationRule>,
    /// Most open outgoing connections per destination; more requests queue for one.
    #[arg(long, default_value_t = 256)]
    max_connections_per_host: usize,
    /// Most outgoing requests in flight across the server; more requests queue.
    #[arg(long, default_value_t = 4096)]
    max_outbound_requests: usize,
    /// Keep compiled components here, so a restart skips compilation (default:
    /// $XDG_CACHE_HOME/wasi-http, else ~/.cache/wasi-http).
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    cache_dir: Option<PathBuf>,
    /// Compile the component on every start; keep nothing on disk.
    #[arg(long)]
    no_cache: bool,
    /// Most disk the cache directory may use; the least recently used compiled
    /// components are deleted beyond it.
    #[arg(long, value_name = "SIZE", default_value = "2GiB", value_parser = parse_size)]
    cache_max_size: u64,
    /// Disable the pooling instance allocator.
    #[arg(long)]
    no_pooling: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Output {
    /// Log lines tagged with the request id (bounded per request).
    Log,
    /// The server's own stdout and stderr.
    Inherit,
    /// Dropped.
    Discard,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Trust {
    /// Mozilla's roots compiled into the binary.
    Webpki,
    /// The operating system's certificate store.
    Native,
    /// Only the --outbound-ca certificates.
    None,
}

fn tls_options(args: &ServeArgs) -> Result<client::TlsOptions> {
    let mut tls = client::TlsOptions::default();
    tls.roots = match args.outbound_trust {
        Trust::Webpki => client::TrustRoots::Webpki,
        Trust::Native => client::TrustRoots::Native,
        Trust::None => client::TrustRoots::Empty,
    };
    for ca in &args.outbound_ca {
        tls.add_ca_pem_file(ca).context("--outbound-ca")?;
    }
    if let (Some(cert), Some(key)) = (&args.outbound_client_cert, &args.outbound_client_key) {
        tls.set_client_auth_pem_files(cert, key)
            .context("--outbound-client-cert/--outbound-client-key")?;
    }
    tls.danger_accept_invalid_certs = args.danger_outbound_accept_invalid_certs;
    if tls.danger_accept_invalid_certs {
        tracing::warn!("outgoing HTTPS accepts any server certificate (--danger-outbound-accept-invalid-certs)");
    }
    Ok(tls)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = num.parse().map_err(|_| format!("invalid duration `{s}`"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("invalid duration unit in `{s}` (use ms, s or m)")),
    }
}

fn parse_dns_server(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| {
            s.parse::<std::net::IpAddr>()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .map_err(|_| format!("invalid DNS server `{s}` (use IP or IP:PORT)"))
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = num.parse().map_err(|_| format!("invalid size `{s}`"))?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid size unit in `{s}` (use B, KiB, MiB or GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size `{s}` too large"))
}

fn parse_memory(s: &str) -> Result<usize, String> {
    let bytes = parse_size(s)?;
    if bytes > 4 << 30 {
        return Err(format!("size `{s}` exceeds wasm32's 4GiB"));
    }
    usize::try_from(bytes).map_err(|_| format!("size `{s}` too large for this machine"))
}

fn main() -> std::process::ExitCode {
    let result = parse_cli(std::env::args_os().collect()).and_then(|cli| match cli.command {
        Command::Serve(args) => {
            logging::init(args.log_format);
            serve(args)
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The cause chain on one line; no backtrace for an operator's mistake.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Parses the command line; with `serve --config FILE`, the file's settings come
/// first and the command line's flags override them.
fn parse_cli(argv: Vec<OsString>) -> Result<Cli> {
    let matches = Cli::command().get_matches_from(argv.clone());
    let Some(("serve", serve)) = matches.subcommand() else {
        return Ok(Cli::from_arg_matches(&matches)?);
    };
    let Some(path) = serve.get_one::<PathBuf>("config") else {
        return Ok(Cli::from_arg_matches(&matches)?);
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let command = Cli::command();
    let serve_command = command
        .find_subcommand("serve")
        .context("internal: no serve command")?;
    let mut from_file: Vec<OsString> = Vec::new();
    let mut component = None;
    for (key, value) in &table {
        let arg = serve_command
            .get_arguments()
            .find(|a| {
                a.get_long() == Some(key.as_str())
                    || (key == "component" && a.get_id() == "component")
            })
            .filter(|a| a.get_id() != "config")
            .with_context(|| format!("{}: unknown setting `{key}`", path.display()))?;
        if serve.value_source(arg.get_id().as_str()) == Some(clap::parser::ValueSource::CommandLine)
        {
            continue; // the command line wins
        }
        let is_path = arg.get_value_hint() == ValueHint::FilePath;
        let values = toml_values(key, value, path)?;
        let mut values = values.into_iter().map(|v| match is_path {
            true => base.join(v).into_os_string(),
            false => OsString::from(v),
        });
        if key == "component" {
            component = values.next_back();
            continue;
        }
        if let toml::Value::Boolean(flag) = value {
            if *flag {
                from_file.push(format!("--{key}").into());
            }
            continue;
        }
        for v in values {
            from_file.push(format!("--{key}").into());
            from_file.push(v);
        }
    }
    // The file's flags go right after `serve`, so the command line's own come later.
    let at = argv
        .iter()
        .position(|a| a == "serve")
        .map_or(argv.len(), |i| i + 1);
    let mut merged: Vec<OsString> = argv[..at].to_vec();
    merged.extend(from_file);
    merged.extend_from_slice(&argv[at..]);
    merged.extend(component);
    let matches = Cli::command().get_matches_from(merged);
    Ok(Cli::from_arg_matches(&matches)?)
}

/// A TOML value as the flag values it stands for.
fn toml_values(key: &str, value: &toml::Value, path: &Path) -> Result<Vec<String>> {
    Ok(match value {
        toml::Value::String(s) => vec![s.clone()],
        toml::Value::Integer(i) => vec![i.to_string()],
        toml::Value::Float(f) => vec![f.to_string()],
        toml::Value::Boolean(b) => vec![b.to_string()],
        toml::Value::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                if matches!(item, toml::Value::Array(_) | toml::Value::Table(_)) {
                    bail!("{}: `{key}` must be a list of plain values", path.display());
                }
                out.extend(toml_values(key, item, path)?);
            }
            out
        }
        toml::Value::Table(_) | toml::Value::Datetime(_) => {
            bail!(
                "{}: `{key}` must be a string, number, boolean or list",
                path.display()
            )
        }
    })
}

fn serve(args: ServeArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(async move {
        let (bytes, name) = match &args.component {
            Some(path) => (
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
                path.display().to_string(),
            ),
            None => (
                DEMO_COMPONENT.to_vec(),
                "the embedded demo component".to_owned(),
            ),
        };
        let kind = wasi_http_host::detect(&bytes).with_context(|| name.clone())?;
        if let ComponentKind::Command { export, .. } = &kind {
            bail!(
                "{name} is a command component (it exports {export}), not an HTTP service: \
                 run it with `wasi-http run`"
            );
        }
        let mut engine_config = EngineConfig::default();
        engine_config.pooling = !args.no_pooling;
        engine_config.max_instances = args.max_instances;
        engine_config.max_memory_bytes = args.max_memory;
        engine_config.fuel = args.fuel.is_some();
        kind.configure(&mut engine_config);
        let (engine, pooling) = wasi_http_host::new_engine(&engine_config)
            .map_err(anyhow::Error::from)
            .context("creating the engine")?;
        tracing::debug!(pooling, "engine ready");
        let cache = open_cache(&args);

        let component = if args.component.is_some() {
            // Compiling a large component takes seconds the first time (cached
            // afterwards): say what is happening.
            eprintln!("Loading {name}: {}...", kind.describe());
            let started = std::time::Instant::now();
            let ticker = Ticker::start(
                started,
                if cache.is_some() {
                    "; later starts load it from the cache"
                } else {
                    ""
                },
            );
            let loaded = compile(&engine, cache.as_ref(), &bytes)
                .with_context(|| format!("{name} is not a valid WebAssembly component"));
            drop(ticker);
            let (component, outcome) = loaded?;
            let how = match outcome {
                Some(CacheOutcome::Hit) => " (from the cache)",
                Some(CacheOutcome::Compiled) => " (compiled and cached)",
                _ => " (compiled)",
            };
            eprintln!("Component ready in {:.0?}{how}", started.elapsed());
            component
        } else {
            compile(&engine, cache.as_ref(), &bytes)
                .context("compiling the embedded demo component")?
                .0
        };
        let client = client::Client::new(client_config(&args)?);
        let mut config = ServiceConfig::default();
        config.hooks = std::sync::Arc::new(client.clone());
        config.max_memory_bytes = Some(args.max_memory);
        config.max_resources = args.max_resources;
        config.request_timeout = (!args.request_timeout.is_zero()).then_some(args.request_timeout);
        config.fuel = args.fuel;
        if args.instance_reuse > 0 {
            let mut reuse = wasi_http_host::InstanceReuse::new(args.instance_reuse);
            reuse.idle_timeout = args.instance_idle_timeout;
            config.instance_reuse = Some(reuse);
        }
        config.guest_output = match args.guest_output {
            Output::Log => wasi_http_host::GuestOutput::Log {
                max_bytes: usize::try_from(args.guest_output_limit).unwrap_or(usize::MAX),
            },
            Output::Inherit => wasi_http_host::GuestOutput::Inherit,
            Output::Discard => wasi_http_host::GuestOutput::Discard,
        };
        let service = match &kind {
            ComponentKind::HttpP2 { .. } => AnyService::P2(wasi_http_host::p2::ProxyService::new(
                &engine, &component, config,
            )?),
            _ => bail!("{name}: {} is not supported yet", kind.describe()),
        };

        let metrics = wasi_http_server::Metrics::new(Some(&client));
        let server_config = server_config(&args, metrics.clone())?;
        let https = server_config.tls.is_some();
        let server = Server::bind(args.addr, server_config)?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        if let Some(addr) = args.metrics_addr {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the metrics address {addr}"))?;
            let mut stop = stop_rx.clone();
            eprintln!("Metrics on http://{}/metrics", listener.local_addr()?);
            tokio::spawn(wasi_http_server::serve_metrics(
                listener,
                metrics,
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            ));
        }
        let scheme = if https { "https" } else { "http" };
        eprintln!("Serving HTTP on {scheme}://{}/", server.local_addr());
        server
            .run(service, async move {
                shutdown_signal().await;
                let _ = stop_tx.send(true);
            })
            .await?;
        drop(stop_rx);
        eprintln!("Shut down.");
        Ok(())
    })
}

fn client_config(args: &ServeArgs) -> Result<client::ClientConfig> {
    let tls = tls_options(args)?
        .build()
        .context("outgoing TLS settings")?;
    let mut policy = client::OutboundPolicy::internal_blocked();
    policy.allow = args.allow_outbound.clone();
    policy.allow_networks = args.allow_network.clone();
    policy
        .block_networks
        .extend(args.block_network.iter().cloned());
    let mut client = client::ClientConfig::default();
    client.tls = Some(tls);
    client.policy = policy;
    client.max_connections_per_host = args.max_connections_per_host;
    client.h2c_destinations = args.outbound_h2c.clone();
    client.max_concurrent_requests = args.max_outbound_requests;
    client.dns_timeout = args.dns_timeout;
    if !args.dns_server.is_empty() {
        client.resolver = client::Resolver::Nameservers(args.dns_server.clone());
    }
    client.connect_timeout = args.connect_timeout;
    client.tls_handshake_timeout = args.tls_handshake_timeout;
    client.max_guest_timeout = args.max_guest_timeout;
    client.pool_idle_timeout = args.pool_idle_timeout;
    client.first_byte_timeout = args.first_byte_timeout;
    client.between_bytes_timeout = args.between_bytes_timeout;
    Ok(client)
}

fn server_config(args: &ServeArgs, metrics: wasi_http_server::Metrics) -> Result<ServerConfig> {
    if args.max_concurrent_requests > args.max_instances as usize && !args.no_pooling {
        bail!(
            "--max-concurrent-requests ({}) exceeds --max-instances ({}): requests past the \
             instance slots would fail; raise --max-instances or lower the request limit",
            args.max_concurrent_requests,
            args.max_instances
        );
    }
    let mut config = ServerConfig::default();
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls =
            Some(wasi_http_server::server_tls_config(cert, key).context("--tls-cert/--tls-key")?);
    }
    config.workers = args.workers;
    config.max_connections = args.max_connections;
    config.max_concurrent_requests = args.max_concurrent_requests;
    config.max_queued_requests = args.max_queued_requests;
    config.queue_timeout = args.queue_timeout;
    config.header_read_timeout = args.header_read_timeout;
    config.idle_timeout = args.idle_timeout;
    config.max_header_bytes = usize::try_from(args.max_header_bytes).unwrap_or(usize::MAX);
    config.max_request_body_bytes = (args.max_request_body > 0).then_some(args.max_request_body);
    config.request_body_timeout = args.request_body_timeout;
    config.shutdown_timeout = args.shutdown_timeout;
    config.access_log = !args.no_access_log;
    config.metrics = metrics;
    Ok(config)
}

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("wasi-http"))
}

/// While a component compiles (seconds for a large one, on a first start), says
/// every few seconds that it still is. Stops when dropped.
struct Ticker(Option<std::sync::mpsc::Sender<()>>);

impl Ticker {
    const EVERY: Duration = Duration::from_secs(3);

    fn start(started: std::time::Instant, hint: &'static str) -> Ticker {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("compile-progress".into())
            .spawn(move || {
                // Ends when the sender is dropped (Disconnected).
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    rx.recv_timeout(Ticker::EVERY)
                {
                    eprintln!("  compiling ({:.0?}{hint})...", started.elapsed());
                }
            });
        // Without the thread there is no progress line, nothing worse.
        Ticker(spawned.ok().map(|_| tx))
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.take();
    }
}

/// The compiled-component cache, unless turned off; one that cannot be used is a
/// warning (the server still starts, compiling every time).
fn open_cache(args: &ServeArgs) -> Option<ComponentCache> {
    if args.no_cache {
        return None;
    }
    let dir = args.cache_dir.clone().or_else(default_cache_dir)?;
    let mut config = ComponentCacheConfig::default();
    config.max_bytes = args.cache_max_size;
    match ComponentCache::open(dir, config) {
        Ok(cache) => Some(cache),
        Err(e) => {
            tracing::warn!("not caching compiled components: {e}");
            None
        }
    }
}

/// The component, and how the cache served it (`None`: no cache).
fn compile(
    engine: &wasmtime::Engine,
    cache: Option<&ComponentCache>,
    bytes: &[u8],
) -> Result<(Component, Option<CacheOutcome>)> {
    let loaded = match cache {
        Some(cache) => cache
            .load(engine, bytes)
            .map(|(component, outcome)| (component, Some(outcome))),
        None => Component::new(engine, bytes).map(|component| (component, None)),
    };
    loaded.map_err(anyhow::Error::from)
}

/// Resolves on the first SIGINT or SIGTERM; a second one exits at once.
async fn shutdown_signal() {
    first_signal().await;
    eprintln!("Shutting down: finishing in-flight requests (signal again to exit now)");
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
