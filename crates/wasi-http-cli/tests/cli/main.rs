//! End-to-end tests of `wasi-http serve` as a separate process, over real sockets.

mod app;
mod calls;
mod deploy;
mod faults;
mod operations;
mod p3;
mod reload;
mod tracing;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use test_support::{get, send, Origin, ServeProcess};

const BIN: &str = env!("CARGO_BIN_EXE_wasi-http");

fn guest(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../guests/wasm")
        .join(format!("{name}.wasm"))
        .to_string_lossy()
        .into_owned()
}

fn url(server: &ServeProcess, path: &str) -> String {
    format!("http://{}{path}", server.addr)
}

/// Asks a server running the client guest to fetch `target`.
async fn via_client_guest(server: &ServeProcess, target: &str) -> test_support::Collected {
    send(
        server.addr,
        get(&url(server, "/"), &[("x-url", target)]),
        false,
    )
    .await
    .expect("response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_component_over_http1_and_h2() {
    let server = ServeProcess::spawn(BIN, &[]);
    for h2 in [false, true] {
        let r = send(server.addr, get(&url(&server, "/"), &[]), h2)
            .await
            .expect("response");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "Hello, wasi:http!\n");
    }
    let status = server.interrupt();
    assert!(status.success(), "graceful exit: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_over_the_wire_with_h2_trailers() {
    let server = ServeProcess::spawn(BIN, &[&guest("echo")]);
    let r = send(
        server.addr,
        http::Request::post(url(&server, "/p?q=1"))
            .header("x-a", "1")
            .body(Full::new(Bytes::from("payload")))
            .unwrap(),
        false,
    )
    .await
    .unwrap();
    assert_eq!(r.header("x-echo-path"), "/p?q=1");
    assert_eq!(r.header("x-echo-authority"), server.addr.to_string());
    assert_eq!(r.text(), "payload");

    // HTTP/2 request trailers come back as response trailers.
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-trailer", "t1".parse().unwrap());
    let body = http_body_util::StreamBody::new(futures_stream(vec![
        http_body::Frame::data(Bytes::from("abc")),
        http_body::Frame::trailers(trailers),
    ]));
    let req = http::Request::post(url(&server, "/t")).body(body).unwrap();
    let r = send(server.addr, req, true).await.unwrap();
    assert_eq!(r.text(), "abc");
    // HTTP/2: the authority comes from the request URI.
    assert_eq!(r.header("x-echo-authority"), server.addr.to_string());
    assert_eq!(r.header("x-echo-method"), "POST");
    assert_eq!(
        r.trailers.expect("trailers").get("x-trailer").unwrap(),
        "t1"
    );
}

fn futures_stream(
    frames: Vec<http_body::Frame<Bytes>>,
) -> impl futures::Stream<Item = Result<http_body::Frame<Bytes>, std::convert::Infallible>> + Unpin
{
    futures::stream::iter(frames.into_iter().map(Ok))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_gets_a_response_and_the_server_keeps_serving() {
    let server = ServeProcess::spawn(
        BIN,
        &[
            &guest("fault"),
            "--request-timeout",
            "1s",
            "--max-memory",
            "64MiB",
        ],
    );
    // Some(status): that status; None: the response started, then its body was
    // aborted (never delivered as if complete).
    let cases: &[(&str, Option<u16>)] = &[
        ("/trap-before", Some(500)),
        ("/never-set", Some(500)),
        ("/busy-loop", Some(504)),
        ("/trap-after", None),
        ("/overflow", None),
        ("/underflow", None),
        ("/set-twice", Some(200)),
        ("/alloc", Some(200)),
        ("/huge-headers", Some(200)),
        ("/invalid-header", Some(200)),
        ("/double-consume", Some(200)),
        ("/finish-live-stream", None),
    ];
    for (path, expected) in cases {
        let start = Instant::now();
        let result = send(server.addr, get(&url(&server, path), &[]), false).await;
        if let Some(status) = expected {
            let r = result.unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(r.status, *status, "{path}: {}", r.text());
        } else {
            assert!(
                result.is_err(),
                "{path}: body must be aborted, got {result:?}"
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{path} took {:?}",
            start.elapsed()
        );
        let r = send(
            server.addr,
            get(&url(&server, "/invalid-header"), &[]),
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("after {path}: {e}"));
        assert_eq!(r.status, 200, "server must keep serving after {path}");
    }
    assert!(
        server.wait_for_log("trapped"),
        "traps are logged:\n{}",
        server.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_keeps_server_memory_bounded() {
    let server = ServeProcess::spawn(BIN, &[&guest("echo")]);
    let before = server.rss_kib();
    let size: usize = 512 * 1024 * 1024;
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let response = sender
        .send_request(get(
            &url(&server, "/"),
            &[("x-echo-generate", &size.to_string())],
        ))
        .await
        .unwrap();
    let mut body = response.into_body();
    let mut total = 0;
    while total < 1024 * 1024 {
        let frame = body.frame().await.unwrap().unwrap();
        total += frame.data_ref().map_or(0, |d| d.len());
    }
    // Stop reading: the guest must be held back, not buffered in the host.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stalled = server.rss_kib();
    assert!(
        stalled.saturating_sub(before) < 64 * 1024,
        "RSS grew from {before} KiB to {stalled} KiB while the client was not reading"
    );
    while let Some(frame) = body.frame().await {
        total += frame.unwrap().data_ref().map_or(0, |d| d.len());
    }
    assert_eq!(total, size);

    // A client that goes away mid-body: the guest sees a closed stream, not a trap.
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let response = sender
        .send_request(get(&url(&server, "/"), &[("x-echo-generate", "67108864")]))
        .await
        .unwrap();
    let mut body = response.into_body();
    let _ = body.frame().await;
    drop(body);
    drop(sender);
    conn.abort();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = server.get("/").await;
    assert_eq!(r.status, 200);
    let log = server.stderr();
    assert!(
        !log.contains("trapped"),
        "an early client drop must not trap the guest:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let origin = Origin::start(None, |_req| async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        http::Response::new(test_support::full("late"))
    })
    .await;
    let server = ServeProcess::spawn(BIN, &[&guest("client"), "--allow-network", "127.0.0.1/32"]);
    let addr = server.addr;
    let target = origin.url("/");
    let in_flight = tokio::spawn(async move {
        send(
            addr,
            get(&format!("http://{addr}/"), &[("x-url", &target)]),
            false,
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = tokio::task::spawn_blocking(move || server.interrupt())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    let r = in_flight
        .await
        .unwrap()
        .expect("in-flight request completed");
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "late"));
}

#[test]
fn startup_errors_are_clear() {
    let dir = std::env::temp_dir().join(format!("wasi-http-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let err = test_support::serve_failure(BIN, &["/nonexistent/app.wasm"]);
    assert!(err.contains("reading /nonexistent/app.wasm"), "{err}");

    let garbage = dir.join("garbage.wasm");
    std::fs::write(&garbage, b"not wasm at all").unwrap();
    let err = test_support::serve_failure(BIN, &[garbage.to_str().unwrap()]);
    assert!(err.contains("not a valid WebAssembly component"), "{err}");

    let core = dir.join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let err = test_support::serve_failure(BIN, &[core.to_str().unwrap()]);
    assert!(
        err.contains("core WebAssembly module, not a component"),
        "{err}"
    );

    let empty = dir.join("empty.wasm");
    std::fs::write(&empty, wat::parse_str("(component)").unwrap()).unwrap();
    let err = test_support::serve_failure(BIN, &[empty.to_str().unwrap()]);
    assert!(err.contains("exports nothing"), "{err}");
    assert!(err.contains("wasi:http/incoming-handler@0.2"), "{err}");

    let needs = dir.join("needs.wasm");
    std::fs::write(
        &needs,
        wat::parse_str(
            r#"(component
                 (import "acme:widgets/frob@1.0.0" (instance (export "frob" (func))))
                 (core module $m (func (export "f")))
                 (core instance $i (instantiate $m))
                 (func $f (canon lift (core func $i "f")))
                 (instance $h (export "handle" (func $f)))
                 (export "wasi:http/incoming-handler@0.2.0" (instance $h)))"#,
        )
        .unwrap(),
    )
    .unwrap();
    let err = test_support::serve_failure(BIN, &[needs.to_str().unwrap()]);
    assert!(
        err.contains("acme:widgets/frob@1.0.0"),
        "the missing import is named: {err}"
    );
    assert!(
        err.contains("no flag adds other interfaces"),
        "and what is provided: {err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_destinations_are_blocked_by_default() {
    let origin = Origin::echo(None).await;
    let server = ServeProcess::spawn(BIN, &[&guest("client")]);
    let target = format!("http://localhost:{}/", origin.addr.port());
    let r = via_client_guest(&server, &target).await;
    assert_eq!(r.header("x-error"), "destination-IP-prohibited");
    assert_eq!(origin.accepted(), 0);
    // The log names the flag that would allow it.
    assert!(
        server.wait_for_log("--allow-network 127.0.0.0/8"),
        "{}",
        server.stderr()
    );

    // An allow-list admits only what it names; Spin's spelling too (any port of
    // 127.0.0.1 over http). localhost is not 127.0.0.1 to either.
    let allowed = format!("http://127.0.0.1:{}", origin.addr.port());
    for rule in [allowed.as_str(), "http://127.0.0.1:*"] {
        let server = ServeProcess::spawn(
            BIN,
            &[
                &guest("client"),
                "--allow-network",
                "127.0.0.0/8",
                "--allow-outbound",
                rule,
            ],
        );
        let r = send(
            server.addr,
            get(&url(&server, "/"), &[("x-url", &format!("{allowed}/ok"))]),
            false,
        )
        .await
        .unwrap();
        assert_eq!(r.header("x-status"), "200", "{rule}");
        let r = via_client_guest(&server, &target).await;
        assert_eq!(r.header("x-error"), "HTTP-request-denied", "{rule}");
    }

    let err = test_support::serve_failure(BIN, &["--allow-outbound", "ftp://x"]);
    assert!(err.contains("scheme must be http, https or *"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_ca_flag_and_clear_tls_setting_errors() {
    let tls = test_support::TestTls::new();
    let origin = Origin::echo(Some(tls.server.clone())).await;
    let dir = std::env::temp_dir().join(format!("wasi-http-cli-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &tls.ca_pem).unwrap();
    let server = ServeProcess::spawn_logging(
        BIN,
        &[
            &guest("client"),
            "--allow-network",
            "127.0.0.1/32",
            "--outbound-ca",
            ca.to_str().unwrap(),
        ],
        "info,wasi_http_client=debug",
    );
    let target = format!("https://localhost:{}/ca", origin.addr.port());
    let r = via_client_guest(&server, &target).await;
    assert_eq!(r.header("x-status"), "200", "{}", r.text());
    assert_eq!(r.header("x-resp-x-origin-version"), "HTTP/2.0");
    // Each outgoing exchange is summed up in one debug event.
    server.wait_for_log("outgoing request finished");
    let log = server.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("outgoing request finished"))
        .unwrap_or_else(|| panic!("no exchange summary in:\n{log}"));
    for field in [
        "status=200",
        "reused=false",
        "outcome=\"complete\"",
        "duration_ms=",
        "bytes=",
    ] {
        assert!(line.contains(field), "{field} missing: {line}");
    }

    let err = test_support::serve_failure(BIN, &["--outbound-ca", "/nonexistent/ca.pem"]);
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    let err = test_support::serve_failure(BIN, &["--outbound-client-cert", ca.to_str().unwrap()]);
    assert!(err.contains("--outbound-client-key"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
