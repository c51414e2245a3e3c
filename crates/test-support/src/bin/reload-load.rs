//! reload-load: load on a `wasi-http serve` app while it is reloaded, for
//! `benches/reload.sh` (loopback only). CONNS keep-alive connections send
//! `GET PATH` for SECONDS; every INTERVAL the settings file is replaced by the
//! next of the given files (round robin) and the server gets SIGHUP. Prints, per
//! reload, the requests, errors and latency (p50, p99, max) of the second before
//! it and the second after it, and the totals.
//! Usage: reload-load ADDR PATH SECONDS CONNS INTERVAL PID CONFIG FILE...

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// One request: when it was sent (since the start), how long it took, and
/// whether it succeeded.
type Sample = (Duration, Duration, bool);

async fn client(
    addr: std::net::SocketAddr,
    path: String,
    start: Instant,
    end: Instant,
    out: Arc<Mutex<Vec<Sample>>>,
) {
    let mut sender = None;
    while Instant::now() < end {
        if sender.is_none() {
            let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
                out.lock()
                    .expect("samples")
                    .push((start.elapsed(), Duration::ZERO, false));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            match hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                .await
            {
                Ok((s, conn)) => {
                    tokio::spawn(conn);
                    sender = Some(s);
                }
                Err(_) => continue,
            }
        }
        let Some(s) = sender.as_mut() else { continue };
        let request = http::Request::get(path.as_str())
            .header(http::header::HOST, "reload.test")
            .body(Empty::new())
            .expect("request");
        let sent = start.elapsed();
        let t = Instant::now();
        let ok = match s.send_request(request).await {
            Ok(response) => {
                let status = response.status();
                response.into_body().collect().await.is_ok() && status.is_success()
            }
            Err(_) => false,
        };
        if !ok {
            sender = None;
        }
        out.lock().expect("samples").push((sent, t.elapsed(), ok));
    }
}

fn stats(samples: &[&Sample]) -> (usize, usize, Duration, Duration, Duration) {
    let errors = samples.iter().filter(|s| !s.2).count();
    let mut latencies: Vec<Duration> = samples.iter().filter(|s| s.2).map(|s| s.1).collect();
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    (
        samples.len(),
        errors,
        at(0.5),
        at(0.99),
        latencies.last().copied().unwrap_or_default(),
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: reload-load ADDR PATH SECONDS CONNS INTERVAL PID CONFIG FILE...";
    let mut args = std::env::args().skip(1);
    let addr: std::net::SocketAddr = args.next().ok_or(usage)?.parse()?;
    if !addr.ip().is_loopback() {
        return Err("reload-load talks to loopback only".into());
    }
    let path = args.next().ok_or(usage)?;
    let seconds: u64 = args.next().ok_or(usage)?.parse()?;
    let conns: usize = args.next().ok_or(usage)?.parse()?;
    let interval: f64 = args.next().ok_or(usage)?.parse()?;
    let pid = args.next().ok_or(usage)?;
    let config = args.next().ok_or(usage)?;
    let files: Vec<String> = args.collect();
    if files.is_empty() {
        return Err(usage.into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut reloads = Vec::new();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..conns {
            tasks.push(tokio::spawn(client(
                addr,
                path.clone(),
                start,
                end,
                samples.clone(),
            )));
        }
        let mut next = 0;
        loop {
            tokio::time::sleep(Duration::from_secs_f64(interval)).await;
            if Instant::now() + Duration::from_secs(1) > end {
                break;
            }
            let file = &files[next % files.len()];
            next += 1;
            std::fs::copy(file, &config)?;
            reloads.push(start.elapsed());
            std::process::Command::new("kill")
                .args(["-HUP", &pid])
                .status()?;
        }
        for t in tasks {
            let _ = t.await;
        }
        Ok::<_, std::io::Error>(())
    })?;
    let samples = samples.lock().map_err(|_| "samples")?;
    println!(
        "{:<10} {:>8} {:>7} {:>9} {:>9} {:>9}",
        "window", "requests", "errors", "p50", "p99", "max"
    );
    let row = |label: String, from: Duration, to: Duration| {
        let window: Vec<&Sample> = samples.iter().filter(|s| s.0 >= from && s.0 < to).collect();
        let (n, errors, p50, p99, max) = stats(&window);
        println!("{label:<10} {n:>8} {errors:>7} {p50:>9.2?} {p99:>9.2?} {max:>9.2?}");
    };
    for (i, at) in reloads.iter().enumerate() {
        let second = Duration::from_secs(1);
        row(format!("{} before", i + 1), at.saturating_sub(second), *at);
        row(format!("{} after", i + 1), *at, *at + second);
    }
    let all: Vec<&Sample> = samples.iter().collect();
    let (n, errors, p50, p99, max) = stats(&all);
    println!(
        "{:<10} {n:>8} {errors:>7} {p50:>9.2?} {p99:>9.2?} {max:>9.2?}",
        "total"
    );
    println!(
        "{} reloads in {seconds} s, {conns} connections",
        reloads.len()
    );
    if errors > 0 {
        std::process::exit(1);
    }
    Ok(())
}
