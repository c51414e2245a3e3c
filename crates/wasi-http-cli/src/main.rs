//! `wasi-http`: glue between the command line and the `wasi-http-host` library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use wasi_http_host::{EngineConfig, ProxyService, ServiceConfig};
use wasmtime::component::Component;

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
    /// Serve a wasi:http/proxy component over HTTP/1.1 and HTTP/2 (cleartext).
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The component (.wasm). Without it, an embedded demo component is served.
    component: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Longest a guest may run for one request, e.g. `30s`, `500ms` (0: no limit).
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    request_timeout: Duration,
    /// Most linear memory per instance, e.g. `512MiB`, `1GiB`.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    max_memory: usize,
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
    allow_outbound: Vec<wasi_http_host::DestinationRule>,
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
    #[arg(long = "outbound-ca", value_name = "FILE")]
    outbound_ca: Vec<PathBuf>,
    /// Base set of trusted authorities for outgoing HTTPS.
    #[arg(long, value_enum, default_value_t = Trust::Webpki)]
    outbound_trust: Trust,
    /// Client certificate chain (PEM) for outgoing mutual TLS; needs --outbound-client-key.
    #[arg(long, value_name = "FILE", requires = "outbound_client_key")]
    outbound_client_cert: Option<PathBuf>,
    /// Private key (PEM) of --outbound-client-cert.
    #[arg(long, value_name = "FILE", requires = "outbound_client_cert")]
    outbound_client_key: Option<PathBuf>,
    /// Accept any server certificate on outgoing HTTPS. For local testing only.
    #[arg(long)]
    danger_outbound_accept_invalid_certs: bool,
    /// Speak HTTP/2 with prior knowledge (h2c) to these plain-http destinations
    /// (repeatable, same syntax as --allow-outbound), e.g. a local gRPC backend.
    #[arg(long = "outbound-h2c", value_name = "RULE")]
    outbound_h2c: Vec<wasi_http_host::DestinationRule>,
    /// Most open outgoing connections per destination; more requests queue for one.
    #[arg(long, default_value_t = 256)]
    max_connections_per_host: usize,
    /// Most outgoing requests in flight across the server; more requests queue.
    #[arg(long, default_value_t = 4096)]
    max_outbound_requests: usize,
    /// Disable the pooling instance allocator.
    #[arg(long)]
    no_pooling: bool,
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

fn tls_options(args: &ServeArgs) -> Result<wasi_http_host::TlsOptions> {
    let mut tls = wasi_http_host::TlsOptions::default();
    tls.roots = match args.outbound_trust {
        Trust::Webpki => wasi_http_host::TrustRoots::Webpki,
        Trust::Native => wasi_http_host::TrustRoots::Native,
        Trust::None => wasi_http_host::TrustRoots::Empty,
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

fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: usize = num.parse().map_err(|_| format!("invalid size `{s}`"))?;
    let mult = match unit {
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
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| format!("size `{s}` too large"))?;
    if bytes > 4 << 30 {
        return Err(format!("size `{s}` exceeds wasm32's 4GiB"));
    }
    Ok(bytes)
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: piped or collected logs stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(async move {
        let mut engine_config = EngineConfig::default();
        engine_config.pooling = !args.no_pooling;
        engine_config.max_instances = args.max_instances;
        engine_config.max_memory_bytes = args.max_memory;
        let (engine, pooling) = wasi_http_host::new_engine(&engine_config)
            .map_err(anyhow::Error::from)
            .context("creating the engine")?;
        tracing::debug!(pooling, "engine ready");

        let component = match &args.component {
            Some(path) => load_component(&engine, path)?,
            None => Component::new(&engine, DEMO_COMPONENT)
                .map_err(anyhow::Error::from)
                .context("compiling the embedded demo component")?,
        };
        let tls = tls_options(&args)?
            .build()
            .context("outgoing TLS settings")?;
        let mut policy = wasi_http_host::OutboundPolicy::internal_blocked();
        policy.allow = args.allow_outbound;
        policy.allow_networks = args.allow_network;
        policy.block_networks.extend(args.block_network);
        let mut client = wasi_http_host::ClientConfig::default();
        client.tls = Some(tls);
        client.policy = policy;
        client.max_connections_per_host = args.max_connections_per_host;
        client.h2c_destinations = args.outbound_h2c;
        client.max_concurrent_requests = args.max_outbound_requests;
        client.dns_timeout = args.dns_timeout;
        if !args.dns_server.is_empty() {
            client.resolver = wasi_http_host::Resolver::Nameservers(args.dns_server);
        }
        client.connect_timeout = args.connect_timeout;
        client.tls_handshake_timeout = args.tls_handshake_timeout;
        client.max_guest_timeout = args.max_guest_timeout;
        client.pool_idle_timeout = args.pool_idle_timeout;
        client.first_byte_timeout = args.first_byte_timeout;
        client.between_bytes_timeout = args.between_bytes_timeout;
        let mut config = ServiceConfig::default();
        config.hooks = std::sync::Arc::new(wasi_http_host::DefaultHooks::new(
            wasi_http_host::Client::new(client),
        ));
        config.max_memory_bytes = Some(args.max_memory);
        config.max_resources = args.max_resources;
        config.request_timeout = (!args.request_timeout.is_zero()).then_some(args.request_timeout);
        let service = ProxyService::new(&engine, &component, config)?;

        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("binding {}", args.addr))?;
        let addr = listener.local_addr()?;
        eprintln!("Serving HTTP on http://{addr}/");
        service.serve(listener, shutdown_signal()).await?;
        eprintln!("Shut down.");
        Ok(())
    })
}

fn load_component(engine: &wasmtime::Engine, path: &PathBuf) -> Result<Component> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if wasmparser_is_core_module(&bytes) {
        bail!(
            "{} is a core WebAssembly module, not a component; \
             make it a component with `wasm-tools component new`",
            path.display()
        );
    }
    Component::new(engine, &bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{} is not a valid WebAssembly component", path.display()))
}

/// Core modules and components share the magic; the layer field tells them apart.
fn wasmparser_is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[0..4] == *b"\0asm" && bytes[6..8] == [0, 0]
}

async fn shutdown_signal() {
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal handling available: serve until killed.
        std::future::pending::<()>().await;
    }
    eprintln!("Shutting down: finishing in-flight requests (Ctrl-C again to exit now)");
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
}
