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

mod client;
mod host;
mod log;
mod origin;
mod spec;

use client::*;
use host::*;
use log::*;
use origin::*;
use spec::*;

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
