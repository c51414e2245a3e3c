//! Operating `wasi-http serve`: HTTPS, metrics and health, logs, guest output,
//! the TOML configuration file, idle connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{guest, url, BIN};
use test_support::{collect, get, send, serve_failure, ServeProcess, TestTls};

fn write_temp(name: &str, contents: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wasi-http-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write temp file");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_alpn_and_the_real_scheme() {
    let tls = TestTls::new();
    let (cert, key) = tls.server_cert_pem();
    let cert = write_temp("server.pem", &cert);
    let key = write_temp("server.key", &key);
    let server = ServeProcess::spawn(
        BIN,
        &[
            &guest("echo"),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let mut client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(tls.roots())
    .with_no_client_auth();
    client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    for h2 in [true, false] {
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let stream = connector.connect(name, tcp).await.expect("TLS handshake");
        let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let io = hyper_util::rt::TokioIo::new(stream);
        let uri = format!("https://localhost:{}/x", server.addr.port());
        let request = get(&uri, &[]);
        let response = if h2 {
            assert_eq!(alpn.as_deref(), Some(&b"h2"[..]), "h2 offered and taken");
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await
                    .unwrap();
            tokio::spawn(conn);
            sender.send_request(request).await.unwrap()
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            sender.send_request(request).await.unwrap()
        };
        let r = collect(response).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-echo-scheme"), "https", "h2={h2}");
        assert_eq!(
            r.header("x-echo-authority"),
            format!("localhost:{}", server.addr.port())
        );
    }
    // Plain HTTP on the TLS port is not served.
    let plain = send(server.addr, get(&url(&server, "/"), &[]), false).await;
    assert!(plain.is_err());
}

#[test]
fn tls_flags_are_validated_at_startup() {
    let missing = serve_failure(
        BIN,
        &[
            "--tls-cert",
            "/nonexistent.pem",
            "--tls-key",
            "/nonexistent.key",
        ],
    );
    assert!(missing.contains("nonexistent.pem"), "{missing}");
    let alone = serve_failure(BIN, &["--tls-cert", "/x.pem"]);
    assert!(alone.contains("--tls-key"), "{alone}");
}

/// Responses hyper sends whole without reading their body to its end (one with a
/// content-length on a connection the client closes, a HEAD) are logged complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_lines_of_whole_responses_say_complete() {
    let server = ServeProcess::spawn(BIN, &[&guest("hello")]);
    for method in ["GET", "HEAD"] {
        let mut conn = TcpStream::connect(server.addr).await.unwrap();
        let head = format!("{method} /{method} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        conn.read_to_end(&mut response).await.unwrap();
        assert!(response.starts_with(b"HTTP/1.1 200"), "{method}");
    }
    let access = server.wait_for_log_lines("wasi_http::access", 2);
    assert_eq!(access.len(), 2, "{}", server.stderr());
    for line in access {
        assert!(line.contains("outcome=\"complete\""), "{line}");
        // Milliseconds to the microsecond, not a float's full expansion.
        let duration = line
            .split("duration_ms=")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("no duration: {line}"));
        let decimals = duration.split('.').nth(1).map_or(0, str::len);
        assert!(decimals <= 3, "{duration} in {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_access_log() {
    let metrics = test_support::free_addr();
    let server = ServeProcess::spawn(BIN, &[&guest("fault"), "--metrics-addr", &metrics]);
    let maddr = server.metrics_addr.expect("metrics address printed");
    let health = send(maddr, get(&format!("http://{maddr}/healthz"), &[]), false)
        .await
        .unwrap();
    assert_eq!(
        (health.status.as_u16(), health.text().as_str()),
        (200, "ok\n")
    );
    for path in ["/invalid-header", "/nope", "/trap-before"] {
        send(server.addr, get(&url(&server, path), &[]), false)
            .await
            .unwrap();
    }
    let text = send(maddr, get(&format!("http://{maddr}/metrics"), &[]), false)
        .await
        .unwrap()
        .text();
    for series in [
        "wasi_http_requests_total{class=\"2xx\"} 1",
        "wasi_http_requests_total{class=\"4xx\"} 1",
        "wasi_http_requests_total{class=\"5xx\"} 1",
        "wasi_http_guest_traps_total 1",
        "wasi_http_requests_in_flight 0",
        "wasi_http_requests_queued 0",
        "wasi_http_request_duration_seconds_count 3",
        "wasi_http_instantiation_seconds_count 3",
        "wasi_http_connections_open",
        "wasi_http_outbound_connections_opened_total 0",
    ] {
        assert!(text.contains(series), "missing `{series}` in\n{text}");
    }
    // One access line per request, with its id. Workers write their lines in
    // batches, so lines of different connections may come in any order.
    let access = server.wait_for_log_lines("wasi_http::access", 3);
    assert_eq!(access.len(), 3, "{}", server.stderr());
    assert!(
        access
            .iter()
            .all(|line| line.contains("outcome=\"complete\"")),
        "every response was delivered whole: {access:#?}"
    );
    let nope = access
        .iter()
        .find(|line| line.contains("path=/nope"))
        .expect("a line for /nope");
    assert!(
        nope.contains("status=404") && nope.contains("request_id="),
        "{nope}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_and_guest_output_tagged_and_bounded() {
    let server = ServeProcess::spawn(BIN, &[&guest("fault"), "--log-format", "json"]);
    let r = server.get("/print").await;
    assert_eq!(r.status, 200);
    server.wait_for_log("over its budget");
    server.wait_for_log("wasi_http::access");
    let log = server.stderr();
    let json: Vec<&str> = log.lines().filter(|l| l.starts_with('{')).collect();
    let hello = json
        .iter()
        .find(|l| l.contains("guest says hello"))
        .unwrap_or_else(|| panic!("guest stdout not logged:\n{log:.2000}"));
    assert!(hello.contains("\"stream\":\"stdout\""), "{hello}");
    let id = hello
        .split("\"request_id\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("request id");
    // The access line names the same request.
    assert!(
        json.iter()
            .any(|l| l.contains("wasi_http::access") && l.contains(id)),
        "{log:.2000}"
    );
    // 1 MiB of stderr is cut at the 64 KiB budget, with one warning.
    let logged: usize = json
        .iter()
        .filter(|l| l.contains("\"stream\":\"stderr\""))
        .count();
    assert!(logged > 0 && logged <= 64, "{logged} stderr lines logged");
    assert_eq!(
        json.iter()
            .filter(|l| l.contains("over its budget"))
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_with_flags_overriding_it() {
    let config = write_temp(
        "serve.toml",
        &format!(
            "component = \"{}\"\nmax-request-body = \"1KiB\"\nno-access-log = true\nallow-outbound = [\"example.com\", \"*.example.org\"]\n",
            guest("echo")
        ),
    );
    let config = config.to_str().unwrap();
    // From the file: the echo guest and the 1 KiB body limit.
    let server = ServeProcess::spawn(BIN, &["--config", config]);
    let (status, _) = post_len(&server, 2000).await;
    assert_eq!(status, 413);
    assert!(!server.stderr().contains("wasi_http::access"));
    drop(server);
    // A flag overrides the file.
    let server = ServeProcess::spawn(BIN, &["--config", config, "--max-request-body", "1MiB"]);
    let (status, body) = post_len(&server, 2000).await;
    assert_eq!((status, body.as_str()), (200, "2000\n"));
    drop(server);
    // Unknown keys and bad values are errors that name the file and key.
    let bad = write_temp("bad.toml", "max-request-bodyy = \"1KiB\"\n");
    let err = serve_failure(BIN, &["--config", bad.to_str().unwrap()]);
    assert!(err.contains("unknown setting `max-request-bodyy`"), "{err}");
    let bad = write_temp("bad2.toml", "max-request-body = \"lots\"\n");
    let err = serve_failure(BIN, &["--config", bad.to_str().unwrap()]);
    assert!(err.contains("lots"), "{err}");
}

async fn post_len(server: &ServeProcess, len: usize) -> (u16, String) {
    let r = send(
        server.addr,
        http::Request::post(url(server, "/"))
            .header("x-echo-read-first", "1")
            .body(http_body_util::Full::new(bytes::Bytes::from(vec![
                b'a';
                len
            ])))
            .unwrap(),
        false,
    )
    .await
    .unwrap();
    (r.status.as_u16(), r.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let server = ServeProcess::spawn(
        BIN,
        &["--idle-timeout", "300ms", "--header-read-timeout", "10s"],
    );
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let mut seen = Vec::new();
    let closed_after = loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break started.elapsed(),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => panic!("idle connection still open after 5 s"),
        }
    };
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
    assert!(
        closed_after >= Duration::from_millis(250) && closed_after < Duration::from_secs(2),
        "closed after {closed_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_are_reused_up_to_n_and_dropped_after_a_trap() {
    let metrics = test_support::free_addr();
    let server = ServeProcess::spawn(
        BIN,
        &[
            &guest("fault"),
            "--instance-reuse",
            "3",
            "--metrics-addr",
            &metrics,
        ],
    );
    let instantiated = || server.metric("wasi_http_instantiation_seconds_count");
    for _ in 0..10 {
        let r = server.get("/invalid-header").await;
        assert_eq!(r.status, 200);
    }
    // 10 sequential requests, 3 per instance.
    assert_eq!(instantiated().await, Some(4.0));
    // The 4th instance has served one request; a trap retires it early.
    let r = server.get("/trap-before").await;
    assert_eq!(r.status, 500);
    let r = server.get("/invalid-header").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        instantiated().await,
        Some(5.0),
        "a trapped instance is not reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_components_are_cached_on_disk() {
    let dir = std::env::temp_dir().join(format!("wasi-http-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let files = |dir: &std::path::Path| -> usize {
        fn count(p: &std::path::Path) -> usize {
            std::fs::read_dir(p).map_or(0, |entries| {
                entries
                    .flatten()
                    .map(|e| {
                        let path = e.path();
                        if path.is_dir() {
                            count(&path)
                        } else {
                            1
                        }
                    })
                    .sum()
            })
        }
        count(dir)
    };
    let dir_arg = dir.to_str().unwrap().to_owned();
    let server = ServeProcess::spawn(
        BIN,
        &[&guest("echo"), "--no-cache", "--cache-dir", &dir_arg],
    );
    assert!(server.wait_for_log("Component ready"));
    drop(server);
    assert_eq!(files(&dir), 0, "--no-cache writes nothing");
    let server = ServeProcess::spawn(BIN, &[&guest("echo"), "--cache-dir", &dir_arg]);
    assert!(server.wait_for_log("(compiled and cached)"));
    let r = server.get("/").await;
    assert_eq!(r.status, 200);
    drop(server);
    // Stored before serving starts, so it is there now.
    assert_eq!(
        files(&dir),
        1,
        "the compiled component is in {}",
        dir.display()
    );
    // The restart maps it, and serves from it.
    let server = ServeProcess::spawn(BIN, &[&guest("echo"), "--cache-dir", &dir_arg]);
    assert!(
        server.wait_for_log("(from the cache)"),
        "a restart is a hit"
    );
    assert_eq!(server.get("/").await.status, 200);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_unsafe_to_reuse_falls_back_to_fresh_instances() {
    let server = ServeProcess::spawn(BIN, &[&guest("fault"), "--instance-reuse", "10"]);
    let status = |path: &'static str| {
        let addr = server.addr;
        let uri = url(&server, path);
        async move {
            send(addr, get(&uri, &[]), false)
                .await
                .unwrap()
                .status
                .as_u16()
        }
    };
    assert_eq!(status("/fresh-only").await, 200);
    // The reused instance fails where its fresh start succeeded...
    assert_eq!(status("/fresh-only").await, 500);
    assert!(
        server.wait_for_log("not safe to reuse"),
        "{}",
        server.stderr()
    );
    // ...so from now on every request gets a fresh instance.
    for _ in 0..3 {
        assert_eq!(status("/fresh-only").await, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_keeping_its_outparam_gets_500_not_a_hang() {
    for reuse in ["0", "10"] {
        let server = ServeProcess::spawn(BIN, &[&guest("fault"), "--instance-reuse", reuse]);
        for _ in 0..2 {
            let r = tokio::time::timeout(
                Duration::from_secs(5),
                send(
                    server.addr,
                    get(&url(&server, "/keep-outparam"), &[]),
                    false,
                ),
            )
            .await
            .unwrap_or_else(|_| panic!("hung (instance reuse {reuse})"))
            .unwrap();
            assert_eq!(r.status, 500, "instance reuse {reuse}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_is_an_error_not_a_shared_listener() {
    let addr = test_support::free_addr();
    let mut first = std::process::Command::new(BIN)
        .args(["serve", "--addr", &addr])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&addr).await.is_err() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut second = std::process::Command::new(BIN)
        .args(["serve", "--addr", &addr])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = first.kill();
    let _ = first.wait();
    let _ = second.kill();
    let out = second.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        status.is_some_and(|s| !s.success()),
        "a second server joined the port: {err}"
    );
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_reusable_instances_expire() {
    let server = ServeProcess::spawn(
        BIN,
        &[
            &guest("fault"),
            "--instance-reuse",
            "10",
            "--instance-idle-timeout",
            "200ms",
            "--metrics-addr",
            &test_support::free_addr(),
        ],
    );
    assert_eq!(server.get("/invalid-header").await.status, 200);
    assert_eq!(server.get("/invalid-header").await.status, 200);
    let instantiated = || server.metric("wasi_http_instantiation_seconds_count");
    assert_eq!(instantiated().await, Some(1.0), "reused while warm");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(server.get("/invalid-header").await.status, 200);
    assert_eq!(
        instantiated().await,
        Some(2.0),
        "expired after its idle timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_answers_5xx_as_usual_keeps_instance_reuse() {
    let origin = test_support::Origin::echo(None).await;
    let refusing = test_support::RefusingPort::new();
    let closed = refusing.addr;
    let server = ServeProcess::spawn(
        BIN,
        &[
            &guest("client"),
            "--instance-reuse",
            "10",
            "--allow-network",
            "127.0.0.1/32",
            "--metrics-addr",
            &test_support::free_addr(),
        ],
    );
    let fetch = |target: String| {
        let addr = server.addr;
        let uri = url(&server, "/");
        async move {
            send(addr, get(&uri, &[("x-url", &target)]), false)
                .await
                .unwrap()
                .status
                .as_u16()
        }
    };
    // Its own 502s (a refused upstream), from the first request on, are not a sign
    // of an instance broken by reuse...
    assert_eq!(fetch(format!("http://{closed}/")).await, 502);
    assert_eq!(fetch(format!("http://{closed}/")).await, 502);
    assert_eq!(fetch(origin.url("/")).await, 200);
    assert_eq!(
        server.metric("wasi_http_instantiation_seconds_count").await,
        Some(1.0),
        "one instance served all three"
    );
    assert!(!server.stderr().contains("not safe to reuse"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_startup_and_the_drain() {
    let server = ServeProcess::spawn(
        BIN,
        &[
            &guest("hello"),
            "--metrics-addr",
            "127.0.0.1:0",
            "--shutdown-delay",
            "1500ms",
        ],
    );
    let m = server.metrics_addr.expect("metrics address");
    let readyz = || async move {
        send(m, get(&format!("http://{m}/readyz"), &[]), false)
            .await
            .map(|r| r.status.as_u16())
    };
    // Ready once the workers run (a moment after the listening line).
    let started = Instant::now();
    while readyz().await.ok() != Some(200) {
        assert!(started.elapsed() < Duration::from_secs(5), "never ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.send_signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Not ready, yet still serving: the balancer stops sending before refusals.
    assert_eq!(readyz().await.ok(), Some(503));
    let r = send(server.addr, get(&url(&server, "/"), &[]), false)
        .await
        .expect("served during the delay");
    assert_eq!(r.status, 200);
    assert_eq!(
        send(m, get(&format!("http://{m}/healthz"), &[]), false)
            .await
            .map(|r| r.status.as_u16())
            .ok(),
        Some(200),
        "liveness stays"
    );
    let addr = server.addr;
    let status = server.wait();
    assert!(status.success(), "{status:?}");
    assert!(TcpStream::connect(addr).await.is_err(), "stopped accepting");
}

#[test]
fn a_component_that_cannot_be_instantiated_is_refused_at_startup() {
    let err = test_support::serve_failure(
        BIN,
        &[&guest("hello"), "--no-pooling", "--max-memory", "64KiB"],
    );
    assert!(err.contains("cannot be instantiated"), "{err}");
    assert!(err.contains("--max-memory"), "{err}");
    let err = test_support::serve_failure(BIN, &[&guest("hello"), "--max-memory", "64KiB"]);
    assert!(err.contains("raise --max-memory"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precompiled_components_load_only_when_allowed_and_intact() {
    let dir = std::env::temp_dir().join(format!("wasi-http-precompiled-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let compile = |guest_name: &str, extra: &[&str]| {
        let out = dir.join(format!("{guest_name}.cwasm"));
        let status = std::process::Command::new(BIN)
            .args(["compile", &guest(guest_name), "-o", out.to_str().unwrap()])
            .args(extra)
            .status()
            .expect("compile");
        assert!(status.success());
        out.to_str().unwrap().to_owned()
    };
    for (name, extra) in [
        ("hello", &[][..]),
        ("p3-hello", &[][..]),
        ("hello", &["--portable"][..]),
    ] {
        let file = compile(name, extra);
        let server = ServeProcess::spawn(BIN, &[&file, "--allow-precompiled", "--no-cache"]);
        let r = server.get("/").await;
        assert_eq!(r.status, 200, "{name}");
        assert!(
            server.stderr().contains("Loaded precompiled"),
            "{}",
            server.stderr()
        );
        let err = serve_failure(BIN, &[&file]);
        assert!(err.contains("--allow-precompiled"), "{err}");
    }
    let file = compile("hello", &[]);
    let bytes = std::fs::read(&file).unwrap();
    // Corrupted or truncated code: a clear error, never a crash.
    let mut bad = bytes.clone();
    let at = bad.len() - 100;
    bad[at] ^= 0xff;
    let bad_path = dir.join("bad.cwasm");
    std::fs::write(&bad_path, &bad).unwrap();
    let err = serve_failure(BIN, &[bad_path.to_str().unwrap(), "--allow-precompiled"]);
    assert!(err.contains("corrupted"), "{err}");
    std::fs::write(&bad_path, &bytes[..bytes.len() / 2]).unwrap();
    let err = serve_failure(BIN, &[bad_path.to_str().unwrap(), "--allow-precompiled"]);
    assert!(err.contains("truncated"), "{err}");
    // Other engine settings: fuel, or a trailer claiming another version.
    let err = serve_failure(BIN, &[&file, "--allow-precompiled", "--fuel", "1000"]);
    assert!(err.contains("compile it again with --fuel"), "{err}");
    let from = b"kind http-p2 wasi:http/incoming-handler@0.2.12";
    let to = b"kind http-p3 wasi:http/handler@0.3.0          ";
    let at = bytes.windows(from.len()).rposition(|w| w == from).unwrap();
    let mut forged = bytes.clone();
    forged[at..at + from.len()].copy_from_slice(to);
    std::fs::write(&bad_path, &forged).unwrap();
    let err = serve_failure(BIN, &[bad_path.to_str().unwrap(), "--allow-precompiled"]);
    assert!(err.contains("cannot be loaded by this build"), "{err}");
    // A bare Wasmtime artifact is named as such.
    std::fs::write(&bad_path, b"\x7fELF\x02\x01\x01").unwrap();
    let err = serve_failure(BIN, &[bad_path.to_str().unwrap(), "--allow-precompiled"]);
    assert!(err.contains("wasmtime compile"), "{err}");
    // `run` takes them too.
    let command = compile("command-p2", &[]);
    let out = std::process::Command::new(BIN)
        .args(["run", "--allow-precompiled", "--no-cache", &command])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Binds a listening socket on loopback, puts it at descriptor FD, then runs the
/// rest of its arguments (`BIN serve ...`), with systemd's variables if SYSTEMD.
const PASS_SOCKET: &str = r#"
import os, socket, sys
fd, systemd = int(sys.argv[1]), sys.argv[2] == "systemd"
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
os.dup2(s.fileno(), fd)
os.set_inheritable(fd, True)
argv = sys.argv[3:]
if systemd:
    os.environ["LISTEN_FDS"] = "1"
    os.environ["LISTEN_PID"] = str(os.getpid())
else:
    argv = argv[:2] + ["--listen-fd", str(fd)] + argv[2:]
os.execv(argv[0], argv)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_on_a_socket_passed_by_a_supervisor() {
    for (fd, how) in [("3", "systemd"), ("7", "flag")] {
        let server = ServeProcess::spawn_wrapped(
            &["python3", "-c", PASS_SOCKET, fd, how],
            BIN,
            &[&guest("hello")],
        );
        let r = server.get("/").await;
        assert_eq!(r.status, 200, "{how}");
        assert!(
            server.stderr().contains("inherited socket"),
            "{how}: {}",
            server.stderr()
        );
    }
    let err = serve_failure(BIN, &["--listen-fd", "1"]);
    assert!(err.contains("stdin, stdout and stderr"), "{err}");
    // A descriptor that is not open.
    let err = serve_failure(BIN, &["--listen-fd", "99"]);
    assert!(err.contains("--listen-fd 99"), "{err}");
}
