//! soak-client: the load and the watch of `benches/soak.sh` (loopback only).
//!
//! CONCURRENCY tasks send, for SECONDS, a mix of requests to four servers:
//! hello (25%), echo with a random body of 0-256 KiB whose echo is compared
//! byte for byte (25%), the client guest fetching from the chaos origin (20%),
//! the fault guest on a mix of paths that answer, trap, or never answer (15%),
//! uploads cut off mid-body (8%) and downloads dropped mid-body (7%). A request
//! that gets neither a response nor an error within 30 s is *hung*.
//!
//! Every minute it prints a row: requests by outcome, and per server its RSS,
//! open descriptors, requests in flight and open connections (the client
//! server's outbound connections too). At the end it lets the servers drain and
//! fails (exit 1) if a request hung, an echo came back different, a server
//! died, in-flight work or connections did not return to zero, or RSS or
//! descriptors grew past the first minutes' level with room to spare.
//!
//! Usage: soak-client SECONDS CONCURRENCY ORIGIN_URL NAME=ADDR,PID,METRICS_ADDR...
//! with NAME one of hello, echo, client, fault.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

const HUNG_AFTER: Duration = Duration::from_secs(30);

#[derive(Clone)]
struct Server {
    name: String,
    addr: SocketAddr,
    pid: u32,
    metrics: SocketAddr,
}

/// Outcome counters of one minute.
#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    ok: AtomicU64,
    client_error: AtomicU64,
    server_error: AtomicU64,
    reset: AtomicU64,
    aborted: AtomicU64,
    hung: AtomicU64,
    mismatch: AtomicU64,
}

impl Counts {
    fn take(&self) -> [u64; 8] {
        [
            &self.requests,
            &self.ok,
            &self.client_error,
            &self.server_error,
            &self.reset,
            &self.aborted,
            &self.hung,
            &self.mismatch,
        ]
        .map(|c| c.swap(0, Ordering::Relaxed))
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

enum Outcome {
    Status(u16),
    Reset,
    Aborted,
    Mismatch,
}

/// The kinds of request, for the closing breakdown.
const KINDS: [&str; 6] = [
    "hello",
    "echo",
    "outbound",
    "fault",
    "cut upload",
    "cut download",
];

/// Outcomes per kind over the whole run: 2xx, 4xx, 5xx, reset, other.
type ByKind = [[AtomicU64; 5]; 6];

async fn exchange(
    addr: SocketAddr,
    request: http::Request<Full<Bytes>>,
) -> Result<(u16, Bytes), hyper::Error> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|_| ())
        .ok();
    let Some(stream) = stream else {
        // Counted as a reset: the server refused the connection.
        return Ok((0, Bytes::new()));
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

fn request(addr: SocketAddr, method: &str, path: &str, body: Bytes) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, addr.to_string())
        .body(Full::new(body))
        .expect("request")
}

async fn one(
    rng: &mut Rng,
    servers: &HashMap<String, Server>,
    origin: &str,
    by_kind: &ByKind,
) -> Outcome {
    let pick = rng.below(100);
    let kind = match pick {
        0..=24 => 0,
        25..=49 => 1,
        50..=69 => 2,
        70..=84 => 3,
        85..=92 => 4,
        _ => 5,
    };
    let outcome = one_of(pick, rng, servers, origin).await;
    let column = match outcome {
        Outcome::Status(s) if s < 400 => 0,
        Outcome::Status(s) if s < 500 => 1,
        Outcome::Status(_) => 2,
        Outcome::Reset => 3,
        _ => 4,
    };
    by_kind[kind][column].fetch_add(1, Ordering::Relaxed);
    outcome
}

async fn one_of(
    pick: u64,
    rng: &mut Rng,
    servers: &HashMap<String, Server>,
    origin: &str,
) -> Outcome {
    let status = |r: Result<(u16, Bytes), hyper::Error>| match r {
        Ok((0, _)) | Err(_) => Outcome::Reset,
        Ok((s, _)) => Outcome::Status(s),
    };
    match pick {
        0..=24 => status(
            exchange(
                servers["hello"].addr,
                request(servers["hello"].addr, "GET", "/", Bytes::new()),
            )
            .await,
        ),
        25..=49 => {
            let addr = servers["echo"].addr;
            let len = rng.below(256 * 1024) as usize;
            let body: Bytes = (0..len)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<u8>>()
                .into();
            match exchange(addr, request(addr, "POST", "/", body.clone())).await {
                Ok((200, back)) if back != body => Outcome::Mismatch,
                other => status(other),
            }
        }
        50..=69 => {
            let addr = servers["client"].addr;
            let mut r = request(addr, "GET", "/", Bytes::new());
            let url = format!("{origin}r{}", rng.below(1_000_000));
            let h = r.headers_mut();
            h.insert("x-url", url.parse().expect("url header"));
            h.insert(
                "x-first-byte-timeout-ms",
                http::HeaderValue::from_static("3000"),
            );
            h.insert(
                "x-between-bytes-timeout-ms",
                http::HeaderValue::from_static("1000"),
            );
            status(exchange(addr, r).await)
        }
        70..=84 => {
            let addr = servers["fault"].addr;
            let path = match rng.below(20) {
                0..=9 => "/",
                10..=12 => "/trap-before",
                13..=14 => "/trap-after",
                15..=16 => "/never-set",
                17 => "/overflow",
                18 => "/underflow",
                _ => "/busy-loop",
            };
            status(exchange(addr, request(addr, "GET", path, Bytes::new())).await)
        }
        85..=92 => {
            // An upload cut off mid-body: half of a declared length, then gone.
            let addr = servers["echo"].addr;
            if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
                let head =
                    format!("POST / HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 100000\r\n\r\n");
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&[b'u'; 50_000]).await;
                tokio::time::sleep(Duration::from_millis(rng.below(200))).await;
            }
            Outcome::Aborted
        }
        _ => {
            // A download dropped mid-body.
            let addr = servers["echo"].addr;
            if let Ok(stream) = tokio::net::TcpStream::connect(addr).await {
                if let Ok((mut sender, conn)) =
                    hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
                        .await
                {
                    tokio::spawn(conn);
                    let mut r = request(addr, "GET", "/", Bytes::new());
                    r.headers_mut()
                        .insert("x-echo-generate", http::HeaderValue::from_static("8388608"));
                    if let Ok(response) = sender.send_request(r).await {
                        let mut body = response.into_body();
                        let _ = body.frame().await;
                    }
                }
            }
            Outcome::Aborted
        }
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

async fn metrics(addr: SocketAddr) -> HashMap<String, f64> {
    let r = request(addr, "GET", "/metrics", Bytes::new());
    let Ok(Ok((200, body))) = tokio::time::timeout(Duration::from_secs(5), exchange(addr, r)).await
    else {
        return HashMap::new();
    };
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// One server's numbers at a moment.
#[derive(Clone, Copy, Default)]
struct Sample {
    alive: bool,
    rss_mib: u64,
    fds: u64,
    in_flight: f64,
    connections: f64,
    outbound_open: f64,
}

async fn sample(server: &Server) -> Sample {
    let m = metrics(server.metrics).await;
    let get = |k: &str| m.get(k).copied().unwrap_or(f64::NAN);
    Sample {
        alive: rss_kib(server.pid).is_some(),
        rss_mib: rss_kib(server.pid).unwrap_or(0) / 1024,
        fds: fds(server.pid).unwrap_or(0),
        in_flight: get("wasi_http_requests_in_flight"),
        connections: get("wasi_http_connections_open"),
        outbound_open: get("wasi_http_outbound_connections_open"),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: soak-client SECONDS CONCURRENCY ORIGIN_URL NAME=ADDR,PID,METRICS_ADDR...";
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().ok_or(usage)?.parse()?;
    let concurrency: u64 = args.next().ok_or(usage)?.parse()?;
    let origin = args.next().ok_or(usage)?;
    let mut servers = HashMap::new();
    for spec in args {
        let (name, rest) = spec.split_once('=').ok_or(usage)?;
        let parts: Vec<&str> = rest.split(',').collect();
        let [addr, pid, metrics] = parts[..] else {
            return Err(usage.into());
        };
        let server = Server {
            name: name.to_owned(),
            addr: addr.parse()?,
            pid: pid.parse()?,
            metrics: metrics.parse()?,
        };
        for a in [server.addr, server.metrics] {
            if !a.ip().is_loopback() {
                return Err("soak-client talks to loopback only".into());
            }
        }
        servers.insert(name.to_owned(), server);
    }
    for name in ["hello", "echo", "client", "fault"] {
        if !servers.contains_key(name) {
            return Err(format!("missing server {name}=...").into());
        }
    }
    let order: Vec<Server> = ["hello", "echo", "client", "fault"]
        .iter()
        .map(|n| servers[*n].clone())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let failed = runtime.block_on(async move {
        let servers = Arc::new(servers);
        let counts = Arc::new(Counts::default());
        let by_kind: Arc<ByKind> = Arc::new(Default::default());
        let end = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for i in 0..concurrency {
            let servers = servers.clone();
            let counts = counts.clone();
            let by_kind = by_kind.clone();
            let origin = origin.clone();
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (i + 1).wrapping_mul(0x1000_0000_01b3));
                while Instant::now() < end {
                    counts.requests.fetch_add(1, Ordering::Relaxed);
                    let outcome = tokio::time::timeout(
                        HUNG_AFTER,
                        one(&mut rng, &servers, &origin, &by_kind),
                    )
                    .await;
                    let counter = match outcome {
                        Err(_) => &counts.hung,
                        Ok(Outcome::Status(s)) if s < 400 => &counts.ok,
                        Ok(Outcome::Status(s)) if s < 500 => &counts.client_error,
                        Ok(Outcome::Status(_)) => &counts.server_error,
                        Ok(Outcome::Reset) => &counts.reset,
                        Ok(Outcome::Aborted) => &counts.aborted,
                        Ok(Outcome::Mismatch) => &counts.mismatch,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        println!(
            "{:>4} {:>7} {:>6} {:>4} {:>5} {:>5} {:>5} {:>4} {:>4} | {}",
            "min",
            "reqs",
            "2xx",
            "4xx",
            "5xx",
            "reset",
            "abort",
            "hung",
            "diff",
            order
                .iter()
                .map(|s| format!(
                    "{:<6} MiB fds infl conn{}",
                    s.name,
                    if s.name == "client" { " out" } else { "" }
                ))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let mut samples: Vec<Vec<Sample>> = Vec::new();
        let mut totals = [0u64; 8];
        let mut minute = 0;
        let row = |label: String, c: [u64; 8], s: &[Sample]| {
            let per: Vec<String> = order
                .iter()
                .zip(s)
                .map(|(server, s)| {
                    let out = if server.name == "client" {
                        format!(" {:>3}", s.outbound_open)
                    } else {
                        String::new()
                    };
                    format!(
                        "{:<6} {:>3} {:>3} {:>4} {:>4}{out}",
                        if s.alive { "" } else { "DEAD" },
                        s.rss_mib,
                        s.fds,
                        s.in_flight,
                        s.connections
                    )
                })
                .collect();
            println!(
                "{label:>4} {:>7} {:>6} {:>4} {:>5} {:>5} {:>5} {:>4} {:>4} | {}",
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                c[5],
                c[6],
                c[7],
                per.join(" | ")
            );
        };
        while Instant::now() < end {
            let left = end.saturating_duration_since(Instant::now());
            tokio::time::sleep(left.min(Duration::from_secs(60))).await;
            minute += 1;
            let c = counts.take();
            for (t, n) in totals.iter_mut().zip(c) {
                *t += n;
            }
            let mut s = Vec::new();
            for server in &order {
                s.push(sample(server).await);
            }
            row(minute.to_string(), c, &s);
            samples.push(s);
        }
        for t in tasks {
            let _ = t.await;
        }
        let c = counts.take();
        for (t, n) in totals.iter_mut().zip(c) {
            *t += n;
        }
        // Drained: nothing in flight, no client connection left (outbound
        // connections may stay pooled until their idle timeout).
        let mut drained = Vec::new();
        for _ in 0..40 {
            drained.clear();
            for server in &order {
                drained.push(sample(server).await);
            }
            if drained
                .iter()
                .all(|s| s.in_flight == 0.0 && s.connections <= 1.0)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        row("end".into(), totals, &drained);
        println!(
            "{:>14} {:>7} {:>6} {:>6} {:>6} {:>6}",
            "by kind", "2xx", "4xx", "5xx", "reset", "other"
        );
        for (kind, counts) in KINDS.iter().zip(by_kind.iter()) {
            let c = counts.each_ref().map(|c| c.load(Ordering::Relaxed));
            println!(
                "{kind:>14} {:>7} {:>6} {:>6} {:>6} {:>6}",
                c[0], c[1], c[2], c[3], c[4]
            );
        }
        let mut failures = Vec::new();
        if totals[6] > 0 {
            failures.push(format!(
                "{} requests hung (no response, no reset, 30 s)",
                totals[6]
            ));
        }
        if totals[7] > 0 {
            failures.push(format!("{} echoes came back different", totals[7]));
        }
        for (i, server) in order.iter().enumerate() {
            let end = drained[i];
            if !end.alive {
                failures.push(format!("{} died", server.name));
                continue;
            }
            // The connection that scrapes is itself open.
            if end.in_flight != 0.0 || end.connections > 1.0 {
                failures.push(format!(
                    "{}: {} in flight and {} connections after the load",
                    server.name, end.in_flight, end.connections
                ));
            }
            // Growth: past the level of the first minutes (the pool and caches
            // fill there), with room for noise.
            let early: Vec<Sample> = samples.iter().take(3).map(|s| s[i]).collect();
            let base_rss = early.iter().map(|s| s.rss_mib).max().unwrap_or(0);
            let base_fds = early.iter().map(|s| s.fds).max().unwrap_or(0);
            let late_rss = samples
                .iter()
                .skip(3)
                .map(|s| s[i].rss_mib)
                .max()
                .unwrap_or(0);
            if late_rss > base_rss * 3 / 2 + 32 {
                failures.push(format!(
                    "{}: RSS grew from {base_rss} to {late_rss} MiB",
                    server.name
                ));
            }
            if end.fds > base_fds + 16 {
                failures.push(format!(
                    "{}: descriptors grew from {base_fds} to {}",
                    server.name, end.fds
                ));
            }
        }
        for f in &failures {
            println!("FAIL: {f}");
        }
        !failures.is_empty()
    });
    if failed {
        std::process::exit(1);
    }
    println!("soak passed");
    Ok(())
}
