//! Conformance runner for the WASI test suite's `wasi:http` JSON specs.
//!
//! A spec directory holds `NAME.json` specs, each with a `NAME.wasm` component beside it
//! (the format is described in the directory's `README.md`). For every spec the runner
//! starts the origin servers it lists on 127.0.0.1, runs the component under a host
//! (`wasi-http serve`/`run`, or `wasmtime serve`/`run`) with `HTTP_SERVER_<NAME>` set for
//! each origin, performs the spec's operations (`run`, `request`, `kill`, `wait`) and
//! prints `PASS NAME` or `FAIL NAME: reason` (followed by the host's last output lines),
//! then `N passed, M failed`. It exits with status 1 if any case failed, 2 on a usage
//! error. Every case is bounded in time and every host process it starts is killed.
//!
//! Usage: `conformance [--host wasi-http|wasmtime] [--bin PATH] [DIR] [NAME...]`
//! (defaults: `--host wasi-http`, `--bin target/debug/wasi-http`,
//! DIR `../shared/wasi-testsuite-p3`). From the workspace root:
//!
//! ```text
//! cargo build -p wasi-http-cli && cargo build -p test-support --bin conformance
//! target/debug/conformance ../shared/wasi-testsuite-p3
//! target/debug/conformance ../shared/wasi-testsuite-p3 http-service http-client
//! target/debug/conformance --host wasmtime --bin ~/.cargo/bin/wasmtime ../shared/wasi-testsuite-p3
//! ```

use std::collections::{HashSet, VecDeque};
use std::error::Error as StdError;
use std::ffi::OsString;
use std::io::{BufRead, BufReader as StdBufReader, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

/// Longest a whole case may take.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest one request may take (connect, response head and body).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest `wait` waits for the host to exit.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest an origin connection may take to deliver its request.
const ORIGIN_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Host output lines shown for a failing case.
const LOG_LINES_SHOWN: usize = 30;
/// Host output lines kept per case.
const LOG_LINES_KEPT: usize = 1000;
/// Longest host output line kept (longer lines are cut).
const LOG_LINE_MAX: usize = 2000;
/// Largest request head an origin accepts.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body an origin accepts.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// Signals `kill` may send.
const SIGNALS: &[&str] = &["INT", "TERM", "KILL", "HUP", "QUIT", "USR1", "USR2"];
/// WASI options for wasmtime (WASI 0.3 is on by default in wasmtime 48; asked for anyway).
const WASMTIME_FLAGS: &[&str] = &["-Scli", "-Shttp", "-Sp3", "-Wcomponent-model-async"];
const DEFAULT_DIR: &str = "../shared/wasi-testsuite-p3";
const USAGE: &str = "usage: conformance [--host wasi-http|wasmtime] [--bin PATH] [DIR] [NAME...]";

// ---------------------------------------------------------------------------------------
// Command line

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum HostKind {
    WasiHttp,
    Wasmtime,
}

struct Args {
    host: HostKind,
    bin: PathBuf,
    dir: PathBuf,
    names: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    fn host_kind(value: &str) -> Result<HostKind, String> {
        match value {
            "wasi-http" => Ok(HostKind::WasiHttp),
            "wasmtime" => Ok(HostKind::Wasmtime),
            other => Err(format!(
                "unknown host `{other}` (expected wasi-http or wasmtime)"
            )),
        }
    }
    let mut host = HostKind::WasiHttp;
    let mut bin: Option<PathBuf> = None;
    let mut positional: Vec<OsString> = Vec::new();
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy().into_owned();
        match text.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--host" => {
                let value = args.next().ok_or("--host needs a value")?;
                host = host_kind(&value.to_string_lossy())?;
            }
            "--bin" => bin = Some(args.next().ok_or("--bin needs a value")?.into()),
            "--" => positional.extend(args.by_ref()),
            _ if text.starts_with("--host=") => host = host_kind(&text["--host=".len()..])?,
            _ if text.starts_with("--bin=") => bin = Some(text["--bin=".len()..].into()),
            _ if text.starts_with('-') && text.len() > 1 => {
                return Err(format!("unknown option `{text}`"));
            }
            _ => positional.push(arg),
        }
    }
    let mut positional = positional.into_iter();
    let dir = positional
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
    let names = positional
        .map(|name| {
            let name = name.to_string_lossy().into_owned();
            name.strip_suffix(".json")
                .map(str::to_owned)
                .unwrap_or(name)
        })
        .collect();
    let bin = bin.unwrap_or_else(|| default_bin(host));
    Ok(Args {
        host,
        bin,
        dir,
        names,
    })
}

fn default_bin(host: HostKind) -> PathBuf {
    match host {
        HostKind::WasiHttp => PathBuf::from("target/debug/wasi-http"),
        HostKind::Wasmtime => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".cargo/bin/wasmtime"))
            .filter(|path| path.is_file())
            .unwrap_or_else(|| PathBuf::from("wasmtime")),
    }
}

/// The specs to run: the names given, or every `*.json` in the directory, sorted.
fn spec_names(args: &Args) -> Result<Vec<String>, String> {
    if !args.names.is_empty() {
        return Ok(args.names.clone());
    }
    let entries = std::fs::read_dir(&args.dir)
        .map_err(|e| format!("cannot read spec directory {}: {e}", args.dir.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", args.dir.display()))?;
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if let Some(stem) = file_name.strip_suffix(".json") {
            if !stem.is_empty() {
                names.push(stem.to_owned());
            }
        }
    }
    names.sort();
    if names.is_empty() {
        return Err(format!("no *.json specs in {}", args.dir.display()));
    }
    Ok(names)
}

// ---------------------------------------------------------------------------------------
// The spec format

#[derive(Deserialize)]
struct Spec {
    world: Option<String>,
    #[serde(default)]
    servers: Vec<ServerSpec>,
    operations: Vec<Operation>,
}

#[derive(Deserialize)]
struct ServerSpec {
    name: String,
    kind: Option<String>,
    #[serde(default)]
    endpoints: Vec<EndpointSpec>,
}

#[derive(Deserialize, Clone)]
struct EndpointSpec {
    method: String,
    path: String,
    mode: Option<String>,
    response: Option<OriginResponse>,
}

/// What a default-mode endpoint answers.
#[derive(Clone)]
struct OriginResponse {
    status: u16,
    headers: Headers,
    body: Option<String>,
    chunks: Option<Vec<String>>,
    trailers: Headers,
}

impl<'de> Deserialize<'de> for OriginResponse {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Object {
            #[serde(default = "default_status")]
            status: u16,
            #[serde(default)]
            headers: Headers,
            body: Option<String>,
            chunks: Option<Vec<String>>,
            #[serde(default)]
            trailers: Headers,
        }
        fn default_status() -> u16 {
            200
        }
        match Value::deserialize(deserializer)? {
            Value::String(body) => Ok(OriginResponse {
                status: 200,
                headers: Headers::default(),
                body: Some(body),
                chunks: None,
                trailers: Headers::default(),
            }),
            value @ Value::Object(_) => {
                let object: Object = serde_json::from_value(value)
                    .map_err(|e| D::Error::custom(format!("endpoint response: {e}")))?;
                Ok(OriginResponse {
                    status: object.status,
                    headers: object.headers,
                    body: object.body,
                    chunks: object.chunks,
                    trailers: object.trailers,
                })
            }
            other => Err(D::Error::custom(format!(
                "endpoint response must be a string or an object, not {}",
                json_kind(&other)
            ))),
        }
    }
}

/// Header fields, from an object (`{"name": "value"}`, a value may be a list of strings)
/// or a list (`[["name", "value"], ...]` or `[{"name": ..., "value": ...}, ...]`).
#[derive(Clone, Default, Debug)]
struct Headers(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        headers_from_json(&value)
            .map(Headers)
            .map_err(D::Error::custom)
    }
}

fn headers_from_json(value: &Value) -> Result<Vec<(String, String)>, String> {
    let mut fields = Vec::new();
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (name, value) in map {
                match value {
                    Value::String(text) => fields.push((name.clone(), text.clone())),
                    Value::Array(items) => {
                        for item in items {
                            let Value::String(text) = item else {
                                return Err(format!(
                                    "header `{name}`: values must be strings, not {}",
                                    json_kind(item)
                                ));
                            };
                            fields.push((name.clone(), text.clone()));
                        }
                    }
                    other => {
                        return Err(format!(
                            "header `{name}`: value must be a string or a list of strings, not {}",
                            json_kind(other)
                        ))
                    }
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                let pair = match item {
                    Value::Array(pair) => match pair.as_slice() {
                        [Value::String(name), Value::String(text)] => Some((name, text)),
                        _ => None,
                    },
                    Value::Object(map) => match (map.get("name"), map.get("value")) {
                        (Some(Value::String(name)), Some(Value::String(text))) => {
                            Some((name, text))
                        }
                        _ => None,
                    },
                    _ => None,
                };
                let (name, text) = pair.ok_or_else(|| {
                    format!(
                        "header list entries must be [name, value] or {{\"name\", \"value\"}} \
                         with strings, not {item}"
                    )
                })?;
                fields.push((name.clone(), text.clone()));
            }
        }
        other => {
            return Err(format!(
                "headers must be an object or a list, not {}",
                json_kind(other)
            ))
        }
    }
    Ok(fields)
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Operation {
    Run,
    Request(RequestOp),
    Kill { signal: String },
    Wait,
}

impl Operation {
    fn describe(&self) -> String {
        match self {
            Operation::Run => "run".into(),
            Operation::Request(r) => format!("request {} {}", r.method, r.path),
            Operation::Kill { signal } => format!("kill {signal}"),
            Operation::Wait => "wait".into(),
        }
    }
}

#[derive(Deserialize)]
struct RequestOp {
    method: String,
    path: String,
    #[serde(default)]
    headers: Headers,
    body: Option<String>,
    response: ExpectedResponse,
}

#[derive(Deserialize)]
struct ExpectedResponse {
    status: u16,
    headers: Option<Headers>,
    body: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum World {
    Service,
    Command,
}

/// Checks what serde cannot; returns the world to run.
fn validate(spec: &Spec) -> Result<World, String> {
    let world = match spec.world.as_deref() {
        None => World::Command,
        Some(world) => match world.split('@').next().unwrap_or(world) {
            "wasi:http/service" => World::Service,
            "wasi:cli/command" => World::Command,
            _ => {
                return Err(format!(
                    "unsupported world `{world}` (expected wasi:http/service or wasi:cli/command)"
                ))
            }
        },
    };
    let mut names = HashSet::new();
    for (i, server) in spec.servers.iter().enumerate() {
        validate_server(server).map_err(|e| format!("servers[{i}] (`{}`): {e}", server.name))?;
        if !names.insert(server.name.to_uppercase()) {
            return Err(format!(
                "servers[{i}]: a second server named `{}`",
                server.name
            ));
        }
    }
    if spec.operations.is_empty() {
        return Err("no operations".into());
    }
    for (i, op) in spec.operations.iter().enumerate() {
        validate_operation(op, world)
            .map_err(|e| format!("operations[{i}] ({}): {e}", op.describe()))?;
    }
    Ok(world)
}

fn validate_server(server: &ServerSpec) -> Result<(), String> {
    if server.name.is_empty()
        || !server
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err("the name must be non-empty letters, digits, `_` or `-`".into());
    }
    match server.kind.as_deref() {
        None => {}
        Some("closed") => return Ok(()),
        Some(other) => return Err(format!("unknown kind `{other}` (expected \"closed\")")),
    }
    let mut seen = HashSet::new();
    for (i, endpoint) in server.endpoints.iter().enumerate() {
        let what = format!("endpoints[{i}] ({} {})", endpoint.method, endpoint.path);
        validate_endpoint(endpoint).map_err(|e| format!("{what}: {e}"))?;
        if !seen.insert((endpoint.method.clone(), endpoint.path.clone())) {
            return Err(format!(
                "{what}: a second endpoint for the same method and path"
            ));
        }
    }
    Ok(())
}

fn validate_endpoint(endpoint: &EndpointSpec) -> Result<(), String> {
    http::Method::from_bytes(endpoint.method.as_bytes())
        .map_err(|_| format!("invalid method `{}`", endpoint.method))?;
    if endpoint.path.is_empty()
        || endpoint
            .path
            .chars()
            .any(|c| c.is_ascii_whitespace() || c.is_control())
    {
        return Err(format!("invalid path {:?}", endpoint.path));
    }
    match (endpoint.mode.as_deref(), &endpoint.response) {
        (None, None) => Err("a default-mode endpoint needs a `response`".into()),
        (None, Some(response)) => validate_origin_response(response),
        (Some(mode @ ("echo-body" | "echo-headers")), Some(_)) => {
            Err(format!("mode `{mode}` takes no `response`"))
        }
        (Some("echo-body" | "echo-headers"), None) => Ok(()),
        (Some(other), _) => Err(format!(
            "unknown mode `{other}` (expected echo-body or echo-headers)"
        )),
    }
}

fn validate_origin_response(response: &OriginResponse) -> Result<(), String> {
    if !(200..=999).contains(&response.status) {
        return Err(format!(
            "response status {} is not a final status (200..=999)",
            response.status
        ));
    }
    if response.body.is_some() && response.chunks.is_some() {
        return Err("a response has either `body` or `chunks`, not both".into());
    }
    validate_fields(&response.headers).map_err(|e| format!("response headers: {e}"))?;
    validate_fields(&response.trailers).map_err(|e| format!("response trailers: {e}"))
}

fn validate_fields(fields: &Headers) -> Result<(), String> {
    for (name, value) in &fields.0 {
        http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid field name {name:?}"))?;
        http::HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value {value:?} of field `{name}`"))?;
    }
    Ok(())
}

fn validate_operation(op: &Operation, world: World) -> Result<(), String> {
    match op {
        Operation::Run | Operation::Wait => Ok(()),
        Operation::Kill { signal } => signal_name(signal).map(drop),
        Operation::Request(request) => {
            if world != World::Service {
                return Err("requests need the world wasi:http/service".into());
            }
            http::Method::from_bytes(request.method.as_bytes())
                .map_err(|_| format!("invalid method `{}`", request.method))?;
            let uri = http::Uri::try_from(request.path.as_str())
                .map_err(|e| format!("invalid path {:?}: {e}", request.path))?;
            if uri.scheme().is_some() || !(request.path.starts_with('/') || request.path == "*") {
                return Err(format!(
                    "the path {:?} must be origin-form (`/...`) or `*`",
                    request.path
                ));
            }
            validate_fields(&request.headers).map_err(|e| format!("request headers: {e}"))?;
            if !(100..=999).contains(&request.response.status) {
                return Err(format!(
                    "expected status {} is not a status code",
                    request.response.status
                ));
            }
            if let Some(headers) = &request.response.headers {
                for (name, _) in &headers.0 {
                    http::HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| format!("invalid expected header name {name:?}"))?;
                }
            }
            Ok(())
        }
    }
}

/// `SIGINT`, `INT`, `sigint` -> `INT`.
fn signal_name(signal: &str) -> Result<&'static str, String> {
    let upper = signal.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS
        .iter()
        .find(|known| **known == bare)
        .copied()
        .ok_or_else(|| {
            format!(
                "unsupported signal `{signal}` (one of {})",
                SIGNALS
                    .iter()
                    .map(|s| format!("SIG{s}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

// ---------------------------------------------------------------------------------------
// Per-case logs

/// Lines of output, most recent kept.
#[derive(Default)]
struct Log {
    lines: Mutex<VecDeque<String>>,
    /// Host output streams still being read.
    open: AtomicUsize,
}

impl Log {
    fn push(&self, mut line: String) {
        if line.len() > LOG_LINE_MAX {
            let mut cut = LOG_LINE_MAX;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str(" [...]");
        }
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() >= LOG_LINES_KEPT {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    fn lines(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        lines.iter().cloned().collect()
    }
}

struct Case {
    stage: Mutex<String>,
    host_log: Arc<Log>,
    origin_log: Arc<Log>,
}

impl Case {
    fn new() -> Case {
        Case {
            stage: Mutex::new(String::from("starting")),
            host_log: Arc::new(Log::default()),
            origin_log: Arc::new(Log::default()),
        }
    }

    fn set_stage(&self, stage: impl Into<String>) {
        *self.stage.lock().unwrap_or_else(PoisonError::into_inner) = stage.into();
    }

    fn stage(&self) -> String {
        self.stage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits (briefly) until the host's output has been read to the end.
    async fn drain(&self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.host_log.open.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn print_logs(&self) {
        print_tail("host output", &self.host_log.lines());
        print_tail("origin requests", &self.origin_log.lines());
    }
}

fn print_tail(title: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let shown = &lines[lines.len().saturating_sub(LOG_LINES_SHOWN)..];
    if shown.len() < lines.len() {
        println!(
            "    {title} (last {} of {} lines):",
            shown.len(),
            lines.len()
        );
    } else {
        println!("    {title}:");
    }
    for line in shown {
        println!("    | {line}");
    }
}

// ---------------------------------------------------------------------------------------
// The host process

/// A running host; killed (SIGKILL) and reaped when dropped unless it has exited.
struct HostProcess {
    child: Child,
    status: Option<ExitStatus>,
    addresses: mpsc::UnboundedReceiver<SocketAddr>,
    log: Arc<Log>,
}

impl HostProcess {
    fn spawn(mut command: Command, log: Arc<Log>) -> Result<HostProcess, String> {
        let shown = std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|part| part.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        log.push(format!("[runner] $ {shown}"));
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| {
            format!(
                "cannot start the host `{}`: {e}",
                command.get_program().to_string_lossy()
            )
        })?;
        let (sender, addresses) = mpsc::unbounded_channel();
        if let Some(stdout) = child.stdout.take() {
            pump(stdout, "[stdout] ", log.clone(), sender.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            pump(stderr, "", log.clone(), sender);
        }
        Ok(HostProcess {
            child,
            status: None,
            addresses,
            log,
        })
    }

    /// The exit status, if the host has exited.
    fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.log.push(format!("[runner] the host exited: {status}"));
                self.status = Some(status);
            }
        }
        self.status
    }

    /// Waits for the `Serving HTTP on http://ADDR/` line.
    async fn wait_for_address(&mut self) -> Result<SocketAddr, String> {
        let mut closed = false;
        loop {
            tokio::select! {
                address = self.addresses.recv(), if !closed => match address {
                    Some(address) => return Ok(address),
                    None => closed = true,
                },
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    if let Ok(address) = self.addresses.try_recv() {
                        return Ok(address);
                    }
                    if let Some(status) = self.poll_exit() {
                        return Err(format!(
                            "the host exited ({status}) before printing `Serving HTTP on ...`"
                        ));
                    }
                }
            }
        }
    }

    async fn wait_exit(&mut self, limit: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.poll_exit() {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the host did not exit within {} s",
                    limit.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn signal(&mut self, signal: &str) -> Result<(), String> {
        // An exited but unreaped child keeps its pid, so the pid cannot have been reused.
        if let Some(status) = self.poll_exit() {
            return Err(format!(
                "the host had already exited ({status}) before SIG{signal}"
            ));
        }
        let pid = self.child.id().to_string();
        self.log.push(format!("[runner] kill -s {signal} {pid}"));
        let output = Command::new("kill")
            .args(["-s", signal, &pid])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run `kill`: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "`kill -s {signal} {pid}` failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(())
    }

    /// Text to add to an error when the host may be the cause.
    fn exit_note(&mut self) -> String {
        match self.poll_exit() {
            Some(status) => format!(" (the host has exited: {status})"),
            None => String::new(),
        }
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        if self.poll_exit().is_none() {
            self.log
                .push("[runner] killing the host (SIGKILL)".to_owned());
            let _ = self.child.kill();
            if let Ok(status) = self.child.wait() {
                self.status = Some(status);
            }
        }
    }
}

/// Copies a host output stream into the log on a thread, reporting any served address.
fn pump(
    stream: impl Read + Send + 'static,
    prefix: &'static str,
    log: Arc<Log>,
    addresses: mpsc::UnboundedSender<SocketAddr>,
) {
    log.open.fetch_add(1, Ordering::SeqCst);
    let thread_log = log.clone();
    let spawned = std::thread::Builder::new()
        .name("host-output".into())
        .spawn(move || {
            let mut reader = StdBufReader::new(stream);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader
                    .by_ref()
                    .take(LOG_LINE_MAX as u64 * 4)
                    .read_until(b'\n', &mut line)
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\r', '\n']);
                let address = parse_serving(text);
                thread_log.push(format!("{prefix}{text}"));
                if let Some(address) = address {
                    let _ = addresses.send(address);
                }
            }
            thread_log.open.fetch_sub(1, Ordering::SeqCst);
        });
    if spawned.is_err() {
        log.open.fetch_sub(1, Ordering::SeqCst);
        log.push("[runner] cannot start a thread to read the host's output".into());
    }
}

/// `... Serving HTTP on http://127.0.0.1:PORT/` -> the address.
fn parse_serving(line: &str) -> Option<SocketAddr> {
    const NEEDLE: &str = "Serving HTTP on ";
    let rest = &line[line.find(NEEDLE)? + NEEDLE.len()..];
    let rest = rest
        .strip_prefix("http://")
        .or_else(|| rest.strip_prefix("https://"))
        .unwrap_or(rest);
    let authority = rest.split(['/', ' ']).next()?;
    let mut address: SocketAddr = authority.parse().ok()?;
    if address.ip().is_unspecified() {
        address.set_ip(Ipv4Addr::LOCALHOST.into());
    }
    Some(address)
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

fn host_command(
    args: &Args,
    world: World,
    component: &Path,
    env: &[String],
) -> Result<Command, String> {
    let mut command = Command::new(&args.bin);
    match (args.host, world) {
        (HostKind::WasiHttp, World::Service) => {
            command.args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--allow-network",
                "127.0.0.1/32",
            ]);
        }
        (HostKind::WasiHttp, World::Command) => {
            command.args(["run", "--allow-network", "127.0.0.1/32"]);
        }
        (HostKind::Wasmtime, World::Service) => {
            command.arg("serve").args(WASMTIME_FLAGS);
            command
                .arg("--addr")
                .arg(format!("127.0.0.1:{}", free_port()?));
        }
        (HostKind::Wasmtime, World::Command) => {
            command.arg("run").args(WASMTIME_FLAGS);
        }
    }
    for variable in env {
        command.arg("--env").arg(variable);
    }
    command.arg(component);
    Ok(command)
}

// ---------------------------------------------------------------------------------------
// Origin servers

/// A spec's origin server; stops serving when dropped.
struct Origin {
    address: SocketAddr,
    /// For `"kind": "closed"`: a bound socket that never listens, so that the port is
    /// refused and not handed to anyone else.
    _reserved: Option<TcpSocket>,
    task: Option<JoinHandle<()>>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn start_origin(server: &ServerSpec, log: Arc<Log>) -> std::io::Result<Origin> {
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    if server.kind.as_deref() == Some("closed") {
        let socket = TcpSocket::new_v4()?;
        socket.bind(loopback)?;
        let address = socket.local_addr()?;
        log.push(format!(
            "[origin {}] closed port {address} (nothing listens)",
            server.name
        ));
        return Ok(Origin {
            address,
            _reserved: Some(socket),
            task: None,
        });
    }
    let listener = TcpListener::bind(loopback).await?;
    let address = listener.local_addr()?;
    let endpoints: Arc<[EndpointSpec]> = server.endpoints.clone().into();
    let name: Arc<str> = server.name.as_str().into();
    let task = tokio::spawn(async move {
        // Dropping the set (when this task is aborted) aborts every connection.
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        connections.spawn(serve_connection(
                            stream,
                            endpoints.clone(),
                            name.clone(),
                            log.clone(),
                        ));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });
    Ok(Origin {
        address,
        _reserved: None,
        task: Some(task),
    })
}

/// A request as an origin received it.
struct OriginRequest {
    method: String,
    /// The request-target in origin form (absolute-form targets are reduced to it).
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    trailers: Vec<(String, Vec<u8>)>,
}

/// One request per connection, answered with `connection: close`.
async fn serve_connection(
    mut stream: TcpStream,
    endpoints: Arc<[EndpointSpec]>,
    name: Arc<str>,
    log: Arc<Log>,
) {
    let _ = stream.set_nodelay(true);
    let (reader, mut writer) = stream.split();
    let mut reader = tokio::io::BufReader::new(reader);
    let read =
        tokio::time::timeout(ORIGIN_READ_TIMEOUT, read_request(&mut reader, &mut writer)).await;
    let (reply, head_only) = match read {
        Err(_) => {
            log.push(format!(
                "[origin {name}] no complete request within {} s; closing",
                ORIGIN_READ_TIMEOUT.as_secs()
            ));
            return;
        }
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            log.push(format!("[origin {name}] bad request: {e} -> 400"));
            (Reply::empty(400), false)
        }
        Ok(Ok(Some(request))) => {
            let reply = answer(&endpoints, &request);
            log.push(format!(
                "[origin {name}] {} {} ({} header fields, {} body bytes, {} trailer fields) -> {}",
                request.method,
                request.target,
                request.headers.len(),
                request.body.len(),
                request.trailers.len(),
                reply.status
            ));
            (reply, request.method == "HEAD")
        }
    };
    if writer.write_all(&reply.encode(head_only)).await.is_err() {
        return;
    }
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
    // Read until the peer closes, so that unread input does not turn our close into a reset.
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(n) = reader.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// One line without its CRLF (or LF); `None` at end of stream before any byte.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> Result<Option<Vec<u8>>, String> {
    let mut line = Vec::new();
    let n = reader
        .take(limit as u64)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| format!("read error: {e}"))?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(if n >= limit {
            "line too long".into()
        } else {
            "connection closed in the middle of a line".into()
        });
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(line))
}

/// A header or trailer section, up to and including its empty line.
async fn read_fields<R: AsyncBufRead + Unpin>(
    reader: &mut R,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut fields = Vec::new();
    let mut used = 0;
    loop {
        let line = read_line(reader, (MAX_HEAD - used).max(2))
            .await?
            .ok_or("connection closed in a header section")?;
        used += line.len() + 2;
        if used > MAX_HEAD {
            return Err("header section too large".into());
        }
        if line.is_empty() {
            return Ok(fields);
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err("obsolete line folding in a header section".into());
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| format!("field line without a colon: {}", show(&line)))?;
        let name = &line[..colon];
        if http::HeaderName::from_bytes(name).is_err() {
            return Err(format!("invalid field name {}", show(name)));
        }
        let value = line[colon + 1..].trim_ascii();
        fields.push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
    }
}

fn field_values<'a>(
    fields: &'a [(String, Vec<u8>)],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> {
    fields
        .iter()
        .filter(move |(field, _)| field.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_slice())
}

async fn read_request<R, W>(reader: &mut R, writer: &mut W) -> Result<Option<OriginRequest>, String>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Empty lines before a request line are allowed (RFC 9112, 2.2).
    let line = loop {
        match read_line(reader, MAX_HEAD).await? {
            None => return Ok(None),
            Some(line) if line.is_empty() => continue,
            Some(line) => break line,
        }
    };
    let line = String::from_utf8(line).map_err(|_| "request line is not UTF-8".to_owned())?;
    let mut parts = line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version), None)
            if !method.is_empty() && !target.is_empty() =>
        {
            (method, target, version)
        }
        _ => return Err(format!("malformed request line {line:?}")),
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("unsupported version {version:?}"));
    }
    let headers = read_fields(reader).await?;
    if field_values(&headers, "expect").any(|v| v.eq_ignore_ascii_case(b"100-continue")) {
        writer
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .map_err(|e| format!("write error: {e}"))?;
        writer
            .flush()
            .await
            .map_err(|e| format!("write error: {e}"))?;
    }
    let codings: Vec<String> = field_values(&headers, "transfer-encoding")
        .flat_map(|value| value.split(|&b| b == b','))
        .map(|coding| String::from_utf8_lossy(coding.trim_ascii()).to_ascii_lowercase())
        .filter(|coding| !coding.is_empty())
        .collect();
    let lengths: Vec<&[u8]> = field_values(&headers, "content-length").collect();
    let (body, trailers) = if !codings.is_empty() {
        if codings.last().map(String::as_str) != Some("chunked") {
            return Err(format!("unsupported transfer-encoding {codings:?}"));
        }
        read_chunked(reader).await?
    } else if let Some(first) = lengths.first() {
        if lengths.iter().any(|length| length != first) {
            return Err("conflicting content-length fields".into());
        }
        let length: usize = std::str::from_utf8(first)
            .ok()
            .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| format!("invalid content-length {}", show(first)))?;
        if length > MAX_BODY {
            return Err("request body too large".into());
        }
        let mut body = vec![0; length];
        reader
            .read_exact(&mut body)
            .await
            .map_err(|e| format!("reading a {length}-byte body: {e}"))?;
        (body, Vec::new())
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(Some(OriginRequest {
        method: method.to_owned(),
        target: origin_form(target),
        headers,
        body,
        trailers,
    }))
}

type Fields = Vec<(String, Vec<u8>)>;

async fn read_chunked<R: AsyncBufRead + Unpin>(
    reader: &mut R,
) -> Result<(Vec<u8>, Fields), String> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader, 4096)
            .await?
            .ok_or("connection closed in a chunked body")?;
        let text = String::from_utf8_lossy(&line);
        let size_text = text.split(';').next().unwrap_or("").trim();
        let size = Some(size_text)
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or_else(|| format!("invalid chunk size line {text:?}"))?;
        if size == 0 {
            break;
        }
        if body.len() + size > MAX_BODY {
            return Err("request body too large".into());
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader
            .read_exact(&mut body[start..])
            .await
            .map_err(|e| format!("reading a {size}-byte chunk: {e}"))?;
        match read_line(reader, 2).await? {
            Some(end) if end.is_empty() => {}
            _ => return Err("a chunk is not followed by CRLF".into()),
        }
    }
    let trailers = read_fields(reader).await?;
    Ok((body, trailers))
}

/// `http://host:port/p?q` -> `/p?q`; origin-form targets unchanged.
fn origin_form(target: &str) -> String {
    let Some(scheme_end) = target.find("://") else {
        return target.to_owned();
    };
    let rest = &target[scheme_end + 3..];
    match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => rest[i..].to_owned(),
        Some(i) => format!("/{}", &rest[i..]),
        None => "/".to_owned(),
    }
}

struct Reply {
    status: u16,
    headers: Fields,
    body: ReplyBody,
}

enum ReplyBody {
    Full(Vec<u8>),
    Chunked {
        chunks: Vec<String>,
        trailers: Headers,
    },
}

impl Reply {
    fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Full(Vec::new()),
        }
    }

    fn from_spec(response: &OriginResponse) -> Reply {
        let headers = response
            .headers
            .0
            .iter()
            .map(|(name, value)| (name.clone(), value.clone().into_bytes()))
            .collect();
        let body = if response.chunks.is_some() || !response.trailers.0.is_empty() {
            ReplyBody::Chunked {
                chunks: response
                    .chunks
                    .clone()
                    .unwrap_or_else(|| response.body.clone().into_iter().collect()),
                trailers: response.trailers.clone(),
            }
        } else {
            ReplyBody::Full(response.body.clone().unwrap_or_default().into_bytes())
        };
        Reply {
            status: response.status,
            headers,
            body,
        }
    }

    fn encode(&self, head_only: bool) -> Vec<u8> {
        fn field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        let has = |name: &str| {
            self.headers
                .iter()
                .any(|(field, _)| field.eq_ignore_ascii_case(name))
        };
        let reason = http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|status| status.canonical_reason())
            .unwrap_or("Status");
        let mut out = format!("HTTP/1.1 {} {reason}\r\n", self.status).into_bytes();
        for (name, value) in &self.headers {
            field(&mut out, name, value);
        }
        if !has("connection") {
            field(&mut out, "connection", b"close");
        }
        let body_allowed = !matches!(self.status, 100..=199 | 204 | 304);
        let send_body = body_allowed && !head_only;
        match &self.body {
            ReplyBody::Full(body) => {
                if body_allowed && !has("content-length") {
                    field(
                        &mut out,
                        "content-length",
                        body.len().to_string().as_bytes(),
                    );
                }
                out.extend_from_slice(b"\r\n");
                if send_body {
                    out.extend_from_slice(body);
                }
            }
            ReplyBody::Chunked { chunks, trailers } => {
                if body_allowed && !has("transfer-encoding") {
                    field(&mut out, "transfer-encoding", b"chunked");
                }
                if body_allowed && !trailers.0.is_empty() && !has("trailer") {
                    let names: Vec<&str> =
                        trailers.0.iter().map(|(name, _)| name.as_str()).collect();
                    field(&mut out, "trailer", names.join(", ").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
                if send_body {
                    // An empty chunk would end the body early: skip it.
                    for chunk in chunks.iter().filter(|chunk| !chunk.is_empty()) {
                        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                        out.extend_from_slice(chunk.as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(b"0\r\n");
                    for (name, value) in &trailers.0 {
                        field(&mut out, name, value.as_bytes());
                    }
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
        out
    }
}

fn answer(endpoints: &[EndpointSpec], request: &OriginRequest) -> Reply {
    let Some(endpoint) = endpoints
        .iter()
        .find(|e| e.method == request.method && e.path == request.target)
    else {
        return Reply::empty(404);
    };
    match endpoint.mode.as_deref() {
        Some("echo-body") => Reply {
            status: 200,
            headers: Vec::new(),
            body: ReplyBody::Full(request.body.clone()),
        },
        Some("echo-headers") => {
            let mut headers = vec![
                (
                    "x-request-method".to_owned(),
                    request.method.clone().into_bytes(),
                ),
                (
                    "x-request-path".to_owned(),
                    request.target.clone().into_bytes(),
                ),
            ];
            for (name, value) in &request.headers {
                headers.push((
                    format!("x-echo-{}", name.to_ascii_lowercase()),
                    value.clone(),
                ));
            }
            for (name, value) in &request.trailers {
                headers.push((
                    format!("x-trailer-{}", name.to_ascii_lowercase()),
                    value.clone(),
                ));
            }
            Reply {
                status: 200,
                headers,
                body: ReplyBody::Full(Vec::new()),
            }
        }
        _ => match &endpoint.response {
            Some(response) => Reply::from_spec(response),
            // Ruled out by `validate`.
            None => Reply::empty(500),
        },
    }
}

// ---------------------------------------------------------------------------------------
// The client side

struct Received {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn send_request(address: SocketAddr, op: &RequestOp) -> Result<Received, String> {
    let stream = TcpStream::connect(address)
        .await
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP/1.1 handshake with {address}: {}", chain(&e)))?;
    let _connection = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let has = |name: &str| {
        op.headers
            .0
            .iter()
            .any(|(field, _)| field.eq_ignore_ascii_case(name))
    };
    let mut request = http::Request::builder()
        .method(op.method.as_str())
        .uri(op.path.as_str());
    if !has("host") {
        request = request.header(http::header::HOST, address.to_string());
    }
    for (name, value) in &op.headers.0 {
        request = request.header(name.as_str(), value.as_str());
    }
    let body = op.body.clone().unwrap_or_default();
    if op.body.is_some() && !has("content-length") && !has("transfer-encoding") {
        request = request.header(http::header::CONTENT_LENGTH, body.len());
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("no response: {}", chain(&e)))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| {
            format!(
                "status {}, then reading the response body failed: {}",
                parts.status.as_u16(),
                chain(&e)
            )
        })?
        .to_bytes();
    Ok(Received {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

fn check_response(expected: &ExpectedResponse, got: &Received) -> Result<(), String> {
    let mut problems = Vec::new();
    if got.status != expected.status {
        problems.push(format!(
            "status: expected {}, got {}",
            expected.status, got.status
        ));
    }
    if let Some(headers) = &expected.headers {
        for (name, value) in &headers.0 {
            let values: Vec<&[u8]> = got
                .headers
                .get_all(name.as_str())
                .iter()
                .map(|v| v.as_bytes())
                .collect();
            if values.is_empty() {
                problems.push(format!("header `{name}`: expected {value:?}, missing"));
            } else if !values.contains(&value.as_bytes()) {
                let values: Vec<String> = values.iter().map(|v| show(v)).collect();
                problems.push(format!(
                    "header `{name}`: expected {value:?}, got {}",
                    values.join(", ")
                ));
            }
        }
    }
    match &expected.body {
        Some(body) if got.body != body.as_bytes() => problems.push(format!(
            "body: expected {}, got {}",
            show(body.as_bytes()),
            show(&got.body)
        )),
        None if got.status != expected.status && !got.body.is_empty() => {
            problems.push(format!("(response body: {})", show(&got.body)));
        }
        _ => {}
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Bytes as a quoted, escaped, possibly shortened string.
fn show(bytes: &[u8]) -> String {
    const MAX: usize = 300;
    let text = String::from_utf8_lossy(bytes);
    if text.chars().count() <= MAX {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head:?}... ({} bytes)", bytes.len())
    }
}

/// An error with its sources.
fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

// ---------------------------------------------------------------------------------------
// Running cases

async fn run_case(args: &Args, name: &str, case: &Case) -> Result<(), String> {
    case.set_stage("reading the spec");
    let spec_path = args.dir.join(format!("{name}.json"));
    let text = std::fs::read_to_string(&spec_path)
        .map_err(|e| format!("cannot read {}: {e}", spec_path.display()))?;
    let spec: Spec = serde_json::from_str(&text).map_err(|e| format!("invalid spec: {e}"))?;
    let world = validate(&spec).map_err(|e| format!("invalid spec: {e}"))?;
    let component = args.dir.join(format!("{name}.wasm"));
    if !component.is_file() {
        return Err(format!("missing component {}", component.display()));
    }

    case.set_stage("starting the origin servers");
    let mut origins = Vec::new();
    let mut env = Vec::new();
    for server in &spec.servers {
        let origin = start_origin(server, case.origin_log.clone())
            .await
            .map_err(|e| format!("cannot start origin server `{}`: {e}", server.name))?;
        env.push(format!(
            "HTTP_SERVER_{}={}",
            server.name.to_uppercase(),
            origin.address
        ));
        origins.push(origin);
    }

    let mut host: Option<HostProcess> = None;
    let mut served: Option<SocketAddr> = None;
    for (i, op) in spec.operations.iter().enumerate() {
        let label = format!("operation {} ({})", i + 1, op.describe());
        case.set_stage(label.clone());
        let result = match op {
            Operation::Run => {
                run_host(args, world, &component, &env, case, &mut host, &mut served).await
            }
            Operation::Request(request) => match (served, host.as_mut()) {
                (Some(address), Some(process)) => {
                    match tokio::time::timeout(REQUEST_TIMEOUT, send_request(address, request))
                        .await
                    {
                        Ok(Ok(received)) => check_response(&request.response, &received),
                        Ok(Err(e)) => Err(format!("{e}{}", process.exit_note())),
                        Err(_) => Err(format!(
                            "no complete response within {} s{}",
                            REQUEST_TIMEOUT.as_secs(),
                            process.exit_note()
                        )),
                    }
                }
                _ => Err("no host is serving (no `run` before this request)".into()),
            },
            Operation::Kill { signal } => match host.as_mut() {
                Some(process) => signal_name(signal).and_then(|signal| process.signal(signal)),
                None => Err("no host to signal (no `run` before `kill`)".into()),
            },
            Operation::Wait => match host.as_mut() {
                Some(process) => match process.wait_exit(WAIT_TIMEOUT).await {
                    Ok(status) if status.success() => Ok(()),
                    Ok(status) => Err(format!(
                        "the host exited with {status}, expected exit status 0"
                    )),
                    Err(e) => Err(e),
                },
                None => Err("no host to wait for (no `run` before `wait`)".into()),
            },
        };
        result.map_err(|e| format!("{label}: {e}"))?;
    }
    drop(host);
    drop(origins);
    Ok(())
}

async fn run_host(
    args: &Args,
    world: World,
    component: &Path,
    env: &[String],
    case: &Case,
    host: &mut Option<HostProcess>,
    served: &mut Option<SocketAddr>,
) -> Result<(), String> {
    if let Some(process) = host.as_mut() {
        if process.poll_exit().is_none() {
            return Err("the host is already running".into());
        }
    }
    *served = None;
    *host = None;
    let command = host_command(args, world, component, env)?;
    let process = host.insert(HostProcess::spawn(command, case.host_log.clone())?);
    if world == World::Service {
        case.set_stage(format!(
            "{} (waiting for `Serving HTTP on ...`)",
            case.stage()
        ));
        *served = Some(process.wait_for_address().await?);
    }
    Ok(())
}

async fn run_all(args: Args) -> ExitCode {
    let names = match spec_names(&args) {
        Ok(names) => names,
        Err(e) => {
            eprintln!("conformance: {e}");
            return ExitCode::from(2);
        }
    };
    let (mut passed, mut failed) = (0usize, 0usize);
    for name in &names {
        let case = Case::new();
        let outcome = tokio::select! {
            result = tokio::time::timeout(CASE_TIMEOUT, run_case(&args, name, &case)) => Some(result),
            _ = tokio::signal::ctrl_c() => None,
        };
        // The case's future, and with it any host process and origin, is gone here.
        case.drain().await;
        let result = match outcome {
            None => {
                println!("interrupted during {name}");
                return ExitCode::from(130);
            }
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(format!(
                "timed out after {} s in {}",
                CASE_TIMEOUT.as_secs(),
                case.stage()
            )),
        };
        match result {
            Ok(()) => {
                passed += 1;
                println!("PASS {name}");
            }
            Err(reason) => {
                failed += 1;
                println!("FAIL {name}: {reason}");
                case.print_logs();
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("conformance: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.bin.components().count() > 1 && !args.bin.is_file() {
        eprintln!(
            "conformance: host binary {} not found{}",
            args.bin.display(),
            match args.host {
                HostKind::WasiHttp => " (build it with `cargo build -p wasi-http-cli`)",
                HostKind::Wasmtime => "",
            }
        );
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("conformance: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(run_all(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_line() {
        assert_eq!(
            parse_serving("Serving HTTP on http://127.0.0.1:4321/"),
            Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 4321)))
        );
        assert_eq!(
            parse_serving("Serving HTTP on http://0.0.0.0:80/"),
            Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 80)))
        );
        assert_eq!(parse_serving("listening"), None);
    }

    #[test]
    fn absolute_targets() {
        assert_eq!(origin_form("/a?b"), "/a?b");
        assert_eq!(origin_form("http://h:1/a?b"), "/a?b");
        assert_eq!(origin_form("http://h:1?b"), "/?b");
        assert_eq!(origin_form("http://h:1"), "/");
    }
}
