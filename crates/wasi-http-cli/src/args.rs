//! The command line's flags: serving, guests, and outgoing requests (shared by
//! `serve` and `run`), and their parsers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::ValueHint;
use wasi_http_client as client;

use wasi_http_config::{parse_dns_server, parse_duration, parse_memory, parse_size};

use crate::logging::LogFormat;

#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// The component (.wasm). Without it, an embedded demo component is served.
    #[arg(value_hint = ValueHint::FilePath)]
    pub(crate) component: Option<PathBuf>,
    /// Reload (as on SIGHUP) when the settings file, a component or a TLS file
    /// changes.
    #[arg(long)]
    pub(crate) watch: bool,
    /// Read settings from this TOML file: keys are these flags' long names
    /// (`max-memory = "512MiB"`, `allow-outbound = ["api.example.com"]`); flags given
    /// on the command line override it; unknown keys are errors.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(crate) config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port). Not used with an
    /// inherited socket (--listen-fd, or systemd's LISTEN_FDS).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) addr: SocketAddr,
    /// Serve on this inherited, bound TCP socket (descriptor 3 or above) instead
    /// of binding --addr: for supervisors that hold the socket across restarts.
    /// Without it, a socket passed by systemd socket activation (LISTEN_FDS) is
    /// used when there is one.
    #[arg(long, value_name = "FD")]
    pub(crate) listen_fd: Option<u32>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key", value_hint = ValueHint::FilePath)]
    pub(crate) tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert", value_hint = ValueHint::FilePath)]
    pub(crate) tls_key: Option<PathBuf>,
    /// Worker threads, each with its own event loop (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub(crate) workers: usize,
    /// Longest a guest may run for one request, e.g. `30s`, `500ms` (0: no limit).
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub(crate) request_timeout: Duration,
    /// Most linear memory per instance, e.g. `512MiB`, `1GiB` (at most 4GiB).
    #[arg(long, default_value = "1GiB", value_parser = parse_memory)]
    pub(crate) max_memory: usize,
    /// Fuel (about one unit per wasm instruction) a guest may burn per request;
    /// past it the guest is stopped with a 500. Costs some speed. Default: no limit.
    #[arg(long)]
    pub(crate) fuel: Option<u64>,
    /// Reuse each instance for up to N requests instead of a fresh instance per
    /// request; an instance is dropped after any trap. 0: a fresh instance per
    /// request. Default: 0 for WASI 0.2 components (reused, they see memory left by
    /// earlier requests: only for guests written for it), 128 for WASI 0.3 ones (the
    /// 0.3 world is made for it).
    #[arg(long, value_name = "N")]
    pub(crate) instance_reuse: Option<u32>,
    /// WASI 0.3: requests one instance serves at the same time; one more starts
    /// another instance. (A 0.2 instance serves one at a time.)
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub(crate) instance_concurrency: u32,
    /// Drop reused instances idle for this long.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(crate) instance_idle_timeout: Duration,
    /// Most open client connections; further ones are closed at once.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) max_connections: usize,
    /// Most requests with a running guest at once (at most --max-instances).
    #[arg(long, default_value_t = 1000)]
    pub(crate) max_concurrent_requests: usize,
    /// Most requests waiting for a free slot; beyond it, 503 with retry-after.
    #[arg(long, default_value_t = 1000)]
    pub(crate) max_queued_requests: usize,
    /// Longest a request waits for a free slot before 503.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) queue_timeout: Duration,
    /// Longest time to receive a request head (HTTP/1.1) or header block
    /// (HTTP/2), and on a new connection its first request (with TLS, the
    /// handshake too); past it the connection is closed.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) header_read_timeout: Duration,
    /// Close a connection with no request in progress, started or ended for this
    /// long (pings and trickled bytes do not count).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(crate) idle_timeout: Duration,
    /// Longest a response may wait for the client to take its next bytes (a client
    /// that stops reading, or keeps an HTTP/2 window shut); past it the response
    /// is aborted and its guest stopped (`0`: no limit).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(crate) response_write_timeout: Duration,
    /// Most requests open at once on one HTTP/2 connection.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub(crate) max_streams_per_connection: u32,
    /// Largest request header section; beyond it, 431.
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    pub(crate) max_header_bytes: u64,
    /// Largest request body, counted while streaming; beyond it, 413 (0: no limit).
    #[arg(long, default_value = "100MiB", value_parser = parse_size)]
    pub(crate) max_request_body: u64,
    /// Longest wait between two pieces of a request body; past it, 408.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) request_body_timeout: Duration,
    /// On SIGINT/SIGTERM, how long in-flight requests may take to finish.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) shutdown_timeout: Duration,
    /// On SIGTERM/SIGINT, go on serving this long with /readyz answering 503
    /// before the drain starts, so load balancers stop sending traffic before
    /// connections are refused (Kubernetes: a few seconds).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub(crate) shutdown_delay: Duration,
    /// Serve Prometheus metrics (`/metrics`), liveness (`/healthz`) and readiness
    /// (`/readyz`) here.
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_addr: Option<SocketAddr>,
    /// Export traces over OTLP/HTTP to this collector (its base URL, e.g.
    /// http://localhost:4318; spans go to /v1/traces). Default: the standard
    /// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is) or
    /// OTEL_EXPORTER_OTLP_ENDPOINT; with none of them, no tracing. The service
    /// name is OTEL_SERVICE_NAME, else `wasi-http`.
    #[arg(long, value_name = "URL")]
    pub(crate) otlp_endpoint: Option<String>,
    /// The share of new traces recorded (0 to 1); a request's `traceparent`
    /// decides for its own trace (parent-based sampling).
    #[arg(long, value_name = "RATIO", default_value_t = 1.0, value_parser = parse_ratio)]
    pub(crate) trace_sample_ratio: f64,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    /// Do not log one line per request.
    #[arg(long)]
    pub(crate) no_access_log: bool,
    /// Where guests' stdout and stderr go: log lines tagged with the request id,
    /// the server's own stdout/stderr, or nowhere.
    #[arg(long, value_enum, default_value_t = Output::Log)]
    pub(crate) guest_output: Output,
    /// Most guest output logged per request (the rest is dropped).
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    pub(crate) guest_output_limit: u64,
    /// Most concurrent instances (pooling allocator slots).
    #[arg(long, default_value_t = 1000)]
    pub(crate) max_instances: u32,
    /// Most resources (fields, bodies, streams, ...) one instance may hold at once.
    #[arg(long, default_value_t = 4096)]
    pub(crate) max_resources: usize,
    #[command(flatten)]
    pub(crate) outbound: OutboundArgs,
    #[command(flatten)]
    pub(crate) guest_env: EnvArgs,
    #[command(flatten)]
    pub(crate) cache: CacheArgs,
    /// Disable the pooling instance allocator.
    #[arg(long)]
    pub(crate) no_pooling: bool,
}

/// Outgoing requests: policy, DNS, timeouts, TLS, limits.
#[derive(clap::Args)]
pub(crate) struct OutboundArgs {
    /// Allow outgoing requests only to these destinations (repeatable):
    /// `[http[s]://]host[:port]`, `*.domain`, `*`, or an IP network in CIDR form.
    /// Without it, any destination outside the blocked networks.
    #[arg(long = "allow-outbound", value_name = "RULE")]
    pub(crate) allow_outbound: Vec<client::DestinationRule>,
    /// Allow outgoing requests to this network even though it is blocked
    /// (repeatable), e.g. `127.0.0.1/32` for a sidecar on loopback.
    #[arg(long = "allow-network", value_name = "CIDR")]
    pub(crate) allow_network: Vec<ipnet::IpNet>,
    /// Also block this network for outgoing requests (repeatable). Loopback,
    /// private, link-local, CGNAT and unique-local networks are blocked by default.
    #[arg(long = "block-network", value_name = "CIDR")]
    pub(crate) block_network: Vec<ipnet::IpNet>,
    /// Outgoing DNS resolution timeout.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(crate) dns_timeout: Duration,
    /// Resolve outgoing host names with these DNS servers (`IP` or `IP:PORT`,
    /// repeatable) instead of the operating system's resolver.
    #[arg(long = "dns-server", value_name = "ADDR", value_parser = parse_dns_server)]
    pub(crate) dns_server: Vec<SocketAddr>,
    /// Outgoing TCP connect timeout (also the longest wait in a queue for a
    /// connection) when the guest sets none.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) connect_timeout: Duration,
    /// Outgoing TLS handshake timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) tls_handshake_timeout: Duration,
    /// Outgoing wait for the response head when the guest sets none.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(crate) first_byte_timeout: Duration,
    /// Outgoing wait between response body frames when the guest sets none.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(crate) between_bytes_timeout: Duration,
    /// Longest outgoing timeout a guest may set in its request options; longer ones
    /// are cut to it.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub(crate) max_guest_timeout: Duration,
    /// How long an idle outgoing keep-alive connection is kept for reuse.
    #[arg(long, default_value = "90s", value_parser = parse_duration)]
    pub(crate) pool_idle_timeout: Duration,
    /// Trust these CA certificates (PEM file, repeatable) for outgoing HTTPS.
    #[arg(long = "outbound-ca", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(crate) outbound_ca: Vec<PathBuf>,
    /// Base set of trusted authorities for outgoing HTTPS.
    #[arg(long, value_enum, default_value_t = Trust::Webpki)]
    pub(crate) outbound_trust: Trust,
    /// Client certificate chain (PEM) for outgoing mutual TLS; needs --outbound-client-key.
    #[arg(long, value_name = "FILE", requires = "outbound_client_key", value_hint = ValueHint::FilePath)]
    pub(crate) outbound_client_cert: Option<PathBuf>,
    /// Private key (PEM) of --outbound-client-cert.
    #[arg(long, value_name = "FILE", requires = "outbound_client_cert", value_hint = ValueHint::FilePath)]
    pub(crate) outbound_client_key: Option<PathBuf>,
    /// Accept any server certificate on outgoing HTTPS. For local testing only.
    #[arg(long)]
    pub(crate) danger_outbound_accept_invalid_certs: bool,
    /// Speak HTTP/2 with prior knowledge (h2c) to these plain-http destinations
    /// (repeatable, same syntax as --allow-outbound), e.g. a local gRPC backend.
    #[arg(long = "outbound-h2c", value_name = "RULE")]
    outbound_h2c: Vec<client::DestinationRule>,
    /// Most open outgoing connections per destination; more requests queue for one.
    #[arg(long, default_value_t = 256)]
    pub(crate) max_connections_per_host: usize,
    /// Most outgoing requests in flight across the server; more requests queue.
    #[arg(long, default_value_t = 4096)]
    pub(crate) max_outbound_requests: usize,
}

/// The compiled-component cache.
#[derive(clap::Args)]
pub(crate) struct CacheArgs {
    /// Keep compiled components here, so a restart skips compilation (default:
    /// $XDG_CACHE_HOME/wasi-http, else ~/.cache/wasi-http).
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Compile the component on every start; keep nothing on disk.
    #[arg(long)]
    pub(crate) no_cache: bool,
    /// Most disk the cache directory may use; the least recently used compiled
    /// components are deleted beyond it.
    #[arg(long, value_name = "SIZE", default_value = "2GiB", value_parser = parse_size)]
    pub(crate) cache_max_size: u64,
    /// Accept a component precompiled by `wasi-http compile` (it then starts in
    /// milliseconds, with no compilation and no cache). Loading precompiled code
    /// runs its machine code with this process's rights without any check: only
    /// for files you made or trust as you trust this binary.
    #[arg(long)]
    pub(crate) allow_precompiled: bool,
}

/// `wasi-http compile`: a component compiled ahead of time for this build.
#[derive(clap::Args)]
pub(crate) struct CompileArgs {
    /// The component (.wasm) to compile.
    #[arg(value_hint = ValueHint::FilePath)]
    pub(crate) component: PathBuf,
    /// Where to write the compiled component.
    #[arg(short, long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(crate) output: PathBuf,
    /// Compile for servers run with --fuel (fuel metering is compiled into the
    /// code; a server with other settings refuses the file).
    #[arg(long)]
    pub(crate) fuel: bool,
    /// Compile for any CPU of this architecture (x86-64: SSE2 only), not just
    /// this one's features: for an image built on one machine and run on others.
    /// Without it, a machine whose CPU lacks a feature this one has refuses the
    /// file (a clear error at start).
    #[arg(long)]
    pub(crate) portable: bool,
}

/// `wasi-http run`: a command component and its arguments.
#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// The component (.wasm): a wasi:cli/command, WASI 0.2 or 0.3.
    #[arg(value_hint = ValueHint::FilePath)]
    pub(crate) component: PathBuf,
    /// Arguments for the component (the first argument it sees is its path); put `--`
    /// before them if one starts with `-`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub(crate) args: Vec<String>,
    /// Most linear memory, e.g. `512MiB`, `1GiB` (at most 4GiB).
    #[arg(long, default_value = "1GiB", value_parser = parse_memory)]
    pub(crate) max_memory: usize,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    #[command(flatten)]
    pub(crate) outbound: OutboundArgs,
    #[command(flatten)]
    pub(crate) guest_env: EnvArgs,
    #[command(flatten)]
    pub(crate) cache: CacheArgs,
}

/// Environment variables for guests.
#[derive(clap::Args)]
pub(crate) struct EnvArgs {
    /// Give guests this environment variable (`KEY=VALUE`, repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub(crate) env: Vec<(String, String)>,
    /// Give guests this variable of the host's environment (repeatable); a variable
    /// that is not set is an error.
    #[arg(long = "env-inherit", value_name = "KEY")]
    pub(crate) env_inherit: Vec<String>,
}

impl EnvArgs {
    /// The variables, `--env` ones after inherited ones (so they win).
    pub(crate) fn vars(&self) -> Result<Vec<(String, String)>> {
        let mut vars = Vec::new();
        for key in &self.env_inherit {
            let value = std::env::var(key).with_context(|| {
                format!("--env-inherit {key}: the variable is not set (or not UTF-8) in this environment")
            })?;
            vars.push((key.clone(), value));
        }
        for (key, value) in &self.env {
            vars.retain(|(k, _)| k != key);
            vars.push((key.clone(), value.clone()));
        }
        Ok(vars)
    }
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!(
            "invalid environment variable `{s}` (use KEY=VALUE)"
        )),
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Output {
    /// Log lines tagged with the request id (bounded per request).
    Log,
    /// The server's own stdout and stderr.
    Inherit,
    /// Dropped.
    Discard,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Trust {
    /// Mozilla's roots compiled into the binary.
    Webpki,
    /// The operating system's certificate store.
    Native,
    /// Only the --outbound-ca certificates.
    None,
}

pub(crate) fn tls_options(args: &OutboundArgs) -> Result<client::TlsOptions> {
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

fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("`{s}` is not a ratio from 0 to 1")),
    }
}

impl OutboundArgs {
    /// The outgoing client these flags describe.
    pub(crate) fn client_config(&self) -> Result<client::ClientConfig> {
        let args = self;
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
}
