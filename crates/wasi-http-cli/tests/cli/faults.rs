//! The fault matrix of issue 4: hostile clients and misbehaving guests against a real
//! `wasi-http serve` process on loopback. Every case checks the status (or that the
//! connection was closed) and then that the server still serves.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{guest, url, BIN};
use test_support::{free_addr, get, send, ServeProcess};

/// The server answers a plain request with 200.
async fn still_serves(server: &ServeProcess) {
    let r = send(server.addr, get(&url(server, "/"), &[]), false)
        .await
        .expect("the server must keep serving");
    assert!(r.status.is_success(), "then: {}", r.status);
}

/// Writes `request` on a new connection and reads until the peer closes (or 10 s);
/// returns what was read and how long until the close.
async fn raw_exchange(server: &ServeProcess, request: &[u8]) -> (String, Duration) {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    read_to_close(&mut stream).await
}

async fn read_to_close(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < Duration::from_secs(10) {
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_headers_are_cut_off() {
    let server = ServeProcess::spawn(BIN, &["--header-read-timeout", "500ms"]);
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // One header line every 200 ms, never finishing the head.
    let mut closed = false;
    for i in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if stream
            .write_all(format!("x-slow-{i}: 1\r\n").as_bytes())
            .await
            .is_err()
        {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await
        {
            closed = true;
            break;
        }
    }
    eprintln!(
        "observed: slowloris connection closed after {:?}",
        started.elapsed()
    );
    assert!(
        closed,
        "a trickled request head must not keep its connection"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "closed after {:?}",
        started.elapsed()
    );
    still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_trickle_past_the_body_timeout_is_408() {
    let server = ServeProcess::spawn(BIN, &[&guest("echo"), "--request-body-timeout", "300ms"]);
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            b"POST / HTTP/1.1\r\nhost: x\r\nx-echo-read-first: 1\r\ncontent-length: 100\r\n\r\n0123456789",
        )
        .await
        .unwrap();
    let (response, took) = read_to_close(&mut stream).await;
    eprintln!("observed: trickled body -> {:.12} after {took:?}", response);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_431() {
    let server = ServeProcess::spawn(BIN, &["--max-header-bytes", "8KiB"]);
    // Over our limit but inside hyper's read buffer: our check answers.
    let r = send(
        server.addr,
        get(&url(&server, "/"), &[("x-big", &"a".repeat(8500))]),
        false,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 431);
    // Far over it: hyper's parser refuses the head.
    let big = format!(
        "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(64 << 10)
    );
    let (response, _) = raw_exchange(&server, big.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 431"), "{response:.80}");
    // HTTP/2 too.
    let r = send(
        server.addr,
        get(&url(&server, "/"), &[("x-big", &"a".repeat(8500))]),
        true,
    )
    .await;
    assert!(
        r.as_ref().map_or(true, |r| r.status == 431),
        "h2: {:?}",
        r.map(|r| r.status)
    );
    still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_413_declared_or_streamed() {
    let server = ServeProcess::spawn(BIN, &[&guest("echo"), "--max-request-body", "1KiB"]);
    // Declared: refused before any guest runs.
    let (response, _) = raw_exchange(
        &server,
        b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5000\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    // Chunked: cut off while streaming, whatever the guest answered.
    let chunk = "a".repeat(600);
    let request = format!(
        "POST / HTTP/1.1\r\nhost: x\r\nx-echo-read-first: 1\r\ntransfer-encoding: chunked\r\n\r\n\
         258\r\n{chunk}\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let (response, _) = raw_exchange(&server, request.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    // Under the limit, fine.
    let ok = format!(
        "POST / HTTP/1.1\r\nhost: x\r\nx-echo-read-first: 1\r\nconnection: close\r\ncontent-length: 600\r\n\r\n{chunk}"
    );
    let (response, _) = raw_exchange(&server, ok.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\r\n600\n"), "{response}");
    still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_are_closed_and_the_server_recovers() {
    let metrics = free_addr();
    let server = ServeProcess::spawn(
        BIN,
        &["--max-connections", "100", "--metrics-addr", &metrics],
    );
    let mut idle = Vec::new();
    for _ in 0..2000 {
        idle.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    // The server has taken what it will take.
    server
        .wait_for_metric(
            "wasi_http_connections_rejected_total",
            |v| v >= 1900.0,
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(
        server.metric("wasi_http_connections_open").await,
        Some(100.0)
    );
    assert_eq!(
        server.metric("wasi_http_connections_rejected_total").await,
        Some(1900.0)
    );
    // A new client is closed at once, not left hanging.
    let mut extra = TcpStream::connect(server.addr).await.unwrap();
    let _ = extra.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let (response, took) = read_to_close(&mut extra).await;
    assert!(
        response.is_empty() && took < Duration::from_secs(2),
        "{response} {took:?}"
    );
    drop(idle);
    server
        .wait_for_metric(
            "wasi_http_connections_open",
            |v| v == 0.0,
            Duration::from_secs(5),
        )
        .await;
    still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_overflow_is_503_with_retry_after() {
    let server = ServeProcess::spawn(
        BIN,
        &[
            &guest("fault"),
            "--request-timeout",
            "3s",
            "--max-concurrent-requests",
            "1",
            "--max-queued-requests",
            "1",
            "--metrics-addr",
            &free_addr(),
        ],
    );
    let busy = |server: &ServeProcess| {
        let addr = server.addr;
        let uri = url(server, "/busy-loop");
        tokio::spawn(async move { send(addr, get(&uri, &[]), false).await })
    };
    let wait_for =
        |series: &'static str| server.wait_for_metric(series, |v| v == 1.0, Duration::from_secs(5));
    let running = busy(&server);
    wait_for("wasi_http_requests_in_flight").await;
    let queued = busy(&server);
    wait_for("wasi_http_requests_queued").await;
    let (r, took) = timed_get(&server, "/busy-loop").await;
    eprintln!(
        "observed: queue full -> {} retry-after {:?} after {took:?}",
        r.status,
        r.header("retry-after"),
    );
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), "1");
    // At once, not after the 10 s queue timeout (slack for a loaded test machine).
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(running.await.unwrap().unwrap().status, 504);
    assert_eq!(queued.await.unwrap().unwrap().status, 504);
    let r = server.get("/invalid-header").await;
    assert_eq!(r.status, 200, "the server serves again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_guest_is_504_within_its_deadline() {
    let server = ServeProcess::spawn(BIN, &[&guest("fault"), "--request-timeout", "500ms"]);
    let (r, took) = timed_get(&server, "/busy-loop").await;
    eprintln!(
        "observed: busy loop -> {} after {took:?} (deadline 500 ms)",
        r.status
    );
    assert_eq!(r.status, 504);
    assert!(
        took < Duration::from_millis(600),
        "504 after {took:?}, deadline 500 ms"
    );
    let r = server.get("/invalid-header").await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bomb_fails_inside_the_guest_only() {
    let server = ServeProcess::spawn(BIN, &[&guest("fault"), "--max-memory", "64MiB"]);
    // A guest that handles the failure reports how far it got.
    let r = server.get("/alloc").await;
    assert_eq!(r.status, 200);
    let mib: u64 = r
        .text()
        .trim_start_matches("allocated ")
        .trim_end_matches(" MiB\n")
        .parse()
        .expect("count");
    eprintln!("observed: memory bomb allocated {mib} MiB under a 64 MiB cap");
    assert!(
        mib > 0 && mib < 64,
        "allocated {mib} MiB under a 64 MiB cap"
    );
    // One that aborts on out-of-memory traps: 500.
    let r = server.get("/alloc-abort").await;
    assert_eq!(r.status, 500);
    let r = server.get("/alloc").await;
    assert_eq!(r.status, 200, "the server serves again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_stops_the_guest() {
    let metrics = free_addr();
    let server = ServeProcess::spawn(BIN, &[&guest("fault"), "--metrics-addr", &metrics]);
    // Before the response: a guest that would spin forever (no request timeout).
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /busy-loop HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.metric("wasi_http_requests_in_flight").await,
        Some(1.0)
    );
    drop(stream);
    let dropped = Instant::now();
    server
        .wait_for_metric(
            "wasi_http_requests_in_flight",
            |v| v == 0.0,
            Duration::from_secs(2),
        )
        .await;
    eprintln!(
        "observed: in-flight back to 0 {:?} after the client left (before response)",
        dropped.elapsed()
    );
    assert_eq!(
        server.metric("wasi_http_requests_in_flight").await,
        Some(0.0),
        "the guest of a vanished client must be stopped"
    );
    drop(server);

    // Mid-response: a 1 GiB body the client stops reading and drops.
    let server = ServeProcess::spawn(BIN, &[&guest("echo"), "--metrics-addr", &free_addr()]);
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nx-echo-generate: 1073741824\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 64 << 10];
    let _ = stream.read(&mut buf).await.unwrap();
    assert_eq!(
        server.metric("wasi_http_requests_in_flight").await,
        Some(1.0)
    );
    drop(stream);
    server
        .wait_for_metric(
            "wasi_http_requests_in_flight",
            |v| v == 0.0,
            Duration::from_secs(2),
        )
        .await;
    assert_eq!(
        server.metric("wasi_http_requests_in_flight").await,
        Some(0.0)
    );
    still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_requests_in_flight() {
    let server = ServeProcess::spawn(BIN, &[&guest("echo")]);
    // A request whose body is still arriving when SIGTERM comes.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nhost: x\r\nx-echo-read-first: 1\r\ncontent-length: 10\r\n\r\n01234")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = server.pid().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New connections are refused while draining...
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "still accepting after SIGTERM"
    );
    // ...and the one in flight completes.
    stream.write_all(b"56789").await.unwrap();
    let (response, _) = read_to_close(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\r\n10\n"), "{response}");
    let status = tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap();
    assert!(status.success(), "exit 0 after draining: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_requests_with_flat_rss() {
    let server = ServeProcess::spawn(BIN, &["--no-access-log"]);
    let addr = server.addr;
    let uri = url(&server, "/");
    // Four keep-alive connections, 5000 requests each.
    let run = |n: usize| {
        let uri = uri.clone();
        async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            for _ in 0..n {
                let r = sender.send_request(get(&uri, &[])).await.unwrap();
                assert_eq!(r.status(), 200);
                http_body_util::BodyExt::collect(r.into_body())
                    .await
                    .unwrap();
            }
        }
    };
    let batch = |n| futures::future::join_all((0..4).map(|_| tokio::spawn(run(n))));
    batch(500).await;
    let warm = server.rss_kib();
    batch(4500).await;
    let after = server.rss_kib();
    eprintln!("observed: RSS {warm} KiB after 2000 requests, {after} KiB after 20000");
    assert!(
        after < warm + 16 * 1024,
        "RSS grew from {warm} KiB to {after} KiB over 18000 requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_timeout_is_503() {
    let server = ServeProcess::spawn(
        BIN,
        &[
            &guest("fault"),
            "--request-timeout",
            "3s",
            "--max-concurrent-requests",
            "1",
            "--queue-timeout",
            "300ms",
            "--metrics-addr",
            &free_addr(),
        ],
    );
    let addr = server.addr;
    let uri = url(&server, "/busy-loop");
    let running = tokio::spawn(async move { send(addr, get(&uri, &[]), false).await });
    server
        .wait_for_metric(
            "wasi_http_requests_in_flight",
            |v| v == 1.0,
            Duration::from_secs(5),
        )
        .await;
    let (r, waited) = timed_get(&server, "/invalid-header").await;
    eprintln!(
        "observed: queued request answered {} after {waited:?}",
        r.status
    );
    assert_eq!(r.status, 503);
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(1),
        "{waited:?}"
    );
    assert_eq!(running.await.unwrap().unwrap().status, 504);
    still_serves_fault(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_stops_a_spinning_guest() {
    let server = ServeProcess::spawn(BIN, &[&guest("fault"), "--fuel", "50000000"]);
    let (r, took) = timed_get(&server, "/busy-loop").await;
    eprintln!("observed: out of fuel -> {} after {took:?}", r.status);
    assert_eq!(r.status, 500);
    assert!(server.wait_for_log("trapped"), "{}", server.stderr());
    still_serves_fault(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_timeout_bounds_the_drain() {
    let server = ServeProcess::spawn(BIN, &[&guest("fault"), "--shutdown-timeout", "500ms"]);
    let addr = server.addr;
    let uri = url(&server, "/busy-loop");
    let stuck = tokio::spawn(async move { send(addr, get(&uri, &[]), false).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let pid = server.pid().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        server.wait()
    })
    .await
    .unwrap();
    let took = started.elapsed();
    eprintln!("observed: exit {status:?} {took:?} after SIGTERM with a stuck request");
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(stuck.await.unwrap().is_err(), "the stuck request is reset");
}

async fn still_serves_fault(server: &ServeProcess) {
    let r = server.get("/invalid-header").await;
    assert_eq!(r.status, 200, "the server must keep serving");
}

/// GET `path`, and how long the response took.
async fn timed_get(server: &ServeProcess, path: &str) -> (test_support::Collected, Duration) {
    let started = Instant::now();
    let r = server.get(path).await;
    (r, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_metrics_requests_and_idle_clients_cannot_starve_the_server() {
    // 256 descriptors: 300 half-sent metrics requests took all of them before
    // the metrics listener had a connection cap.
    let server = ServeProcess::spawn_with_fd_limit(BIN, &["--metrics-addr", "127.0.0.1:0"], 256);
    assert!(server.wait_for_log("does not fit the file descriptor limit"));
    let metrics = server.metrics_addr.expect("metrics address");
    let mut held = Vec::new();
    for _ in 0..300 {
        if let Ok(mut conn) = TcpStream::connect(metrics).await {
            let _ = conn.write_all(b"GET /metrics HTTP/1.1\r\n").await;
            held.push(conn);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answered = tokio::time::timeout(Duration::from_secs(5), still_serves(&server)).await;
    assert!(answered.is_ok(), "the main listener answered");
    // Idle clients on the main port past its (cut) connection limit: the
    // server keeps descriptors for the metrics listener and keeps serving.
    drop(held);
    let mut idle = Vec::new();
    for _ in 0..250 {
        if let Ok(conn) = TcpStream::connect(server.addr).await {
            idle.push(conn);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let health = tokio::time::timeout(
        Duration::from_secs(5),
        send(
            metrics,
            get(&format!("http://{metrics}/healthz"), &[]),
            false,
        ),
    )
    .await
    .expect("health answered in time")
    .expect("health response");
    assert_eq!(health.status, 200);
    drop(idle);
    tokio::time::sleep(Duration::from_millis(300)).await;
    still_serves(&server).await;
}
