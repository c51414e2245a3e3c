//! WASI 0.3 components under `wasi-http serve`, and `wasi-http run` for command
//! components of both versions.

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use test_support::{get, send, Origin, ServeProcess};

use crate::{guest, url, BIN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_hello_over_http1_and_h2_says_its_version() {
    let server = ServeProcess::spawn(BIN, &[&guest("p3-hello")]);
    assert!(
        server
            .stderr()
            .contains("WASI 0.3 HTTP service (wasi:http/handler@0.3.0)"),
        "{}",
        server.stderr()
    );
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
async fn p3_echo_over_the_wire_with_h2_trailers() {
    let server = ServeProcess::spawn(BIN, &[&guest("p3-echo")]);
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

    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-trailer", "t1".parse().unwrap());
    let frames = futures::stream::iter(
        vec![
            http_body::Frame::data(Bytes::from("abc")),
            http_body::Frame::trailers(trailers),
        ]
        .into_iter()
        .map(Ok::<_, std::convert::Infallible>),
    );
    let req = http::Request::post(url(&server, "/t"))
        .body(http_body_util::StreamBody::new(frames))
        .unwrap();
    let r = send(server.addr, req, true).await.unwrap();
    assert_eq!(r.text(), "abc");
    assert_eq!(
        r.trailers.expect("trailers").get("x-trailer").unwrap(),
        "t1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_every_fault_gets_a_response_and_the_server_keeps_serving() {
    let server = ServeProcess::spawn(
        BIN,
        &[
            &guest("p3-fault"),
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
        ("/trap-after", Some(500)),
        ("/trap-mid-body", None),
        ("/busy-loop", Some(504)),
        ("/overflow", None),
        ("/underflow", None),
        ("/error-code", Some(403)),
        ("/status-1xx", Some(500)),
        ("/alloc", Some(200)),
        ("/huge-headers", Some(200)),
        ("/drop-streams", Some(200)),
    ];
    for (path, expected) in cases {
        let start = Instant::now();
        let result = send(server.addr, get(&url(&server, path), &[]), false).await;
        match expected {
            Some(status) => {
                let r = result.unwrap_or_else(|e| panic!("{path}: {e}"));
                assert_eq!(r.status, *status, "{path}: {}", r.text());
            }
            None => assert!(
                result.is_err(),
                "{path}: body must be aborted, got {result:?}"
            ),
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{path} took {:?}",
            start.elapsed()
        );
        let r = send(server.addr, get(&url(&server, "/print"), &[]), false)
            .await
            .unwrap_or_else(|e| panic!("after {path}: {e}"));
        assert_eq!(r.status, 200, "server must keep serving after {path}");
    }
    assert!(server.wait_for_log("trapped"), "{}", server.stderr());
}

/// 0.3 instances are reused by default (and serve requests at once);
/// `--instance-reuse 0` gives every request its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_instances_are_reused_by_default_and_the_flag_changes_it() {
    let ids = |server: &ServeProcess| {
        let addr = server.addr;
        let url = url(server, "/");
        async move {
            let mut ids = Vec::new();
            // One connection: one worker thread, whose instances it is served by.
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            for _ in 0..5 {
                sender.ready().await.unwrap();
                let r = sender.send_request(get(&url, &[])).await.unwrap();
                ids.push(r.headers()["x-echo-instance"].to_str().unwrap().to_owned());
                let _ = http_body_util::BodyExt::collect(r.into_body()).await;
            }
            ids
        }
    };
    let distinct = |ids: &[String]| ids.iter().collect::<std::collections::HashSet<_>>().len();
    let server = ServeProcess::spawn(BIN, &[&guest("p3-echo")]);
    let reused = ids(&server).await;
    // (A request arriving while its instance computes goes to another one, so a
    // loaded machine may see two.)
    assert!(distinct(&reused) <= 2, "{reused:?}");
    drop(server);
    let server = ServeProcess::spawn(BIN, &[&guest("p3-echo"), "--instance-reuse", "0"]);
    let fresh = ids(&server).await;
    assert_eq!(
        distinct(&fresh),
        5,
        "a fresh instance per request: {fresh:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_guests_get_the_environment_they_are_given() {
    let server = test_support::ServeProcess::spawn_with_env(
        BIN,
        &[
            &guest("p3-fault"),
            "--env",
            "GREETING=hi there",
            "--env-inherit",
            "WASI_HTTP_TEST_INHERITED",
        ],
        &[("WASI_HTTP_TEST_INHERITED", "from the host")],
    );
    for (name, value) in [
        ("GREETING", "hi there\n"),
        ("WASI_HTTP_TEST_INHERITED", "from the host\n"),
    ] {
        let r = send(
            server.addr,
            get(&url(&server, "/env"), &[("x-env", name)]),
            false,
        )
        .await
        .unwrap();
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, value));
    }
    let r = send(
        server.addr,
        get(&url(&server, "/env"), &[("x-env", "PATH")]),
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        r.status, 404,
        "the host's environment is not passed by default"
    );
    let err = test_support::serve_failure(
        BIN,
        &[
            &guest("p3-fault"),
            "--env-inherit",
            "WASI_HTTP_TEST_SURELY_UNSET",
        ],
    );
    assert!(err.contains("WASI_HTTP_TEST_SURELY_UNSET"), "{err}");
    let err = test_support::serve_failure(BIN, &[&guest("p3-fault"), "--env", "NOEQUALS"]);
    assert!(err.contains("KEY=VALUE"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_metrics_count_requests_traps_and_deadlines() {
    let metrics = test_support::free_addr();
    let server = ServeProcess::spawn(
        BIN,
        &[
            &guest("p3-fault"),
            "--metrics-addr",
            &metrics,
            // Long enough for the first trap of the process, whose backtrace takes
            // a few hundred milliseconds to symbolize on a loaded machine.
            "--request-timeout",
            "2s",
        ],
    );
    let mut statuses = Vec::new();
    for path in ["/print", "/nope", "/trap-before", "/busy-loop"] {
        let r = send(server.addr, get(&url(&server, path), &[]), false)
            .await
            .unwrap();
        statuses.push((path, r.status.as_u16()));
    }
    assert_eq!(
        statuses,
        [
            ("/print", 200),
            ("/nope", 404),
            ("/trap-before", 500),
            ("/busy-loop", 504)
        ],
        "{}",
        server.stderr()
    );
    for (series, value) in [
        ("wasi_http_requests_total{class=\"2xx\"}", 1.0),
        ("wasi_http_requests_total{class=\"4xx\"}", 1.0),
        ("wasi_http_requests_total{class=\"5xx\"}", 2.0),
        ("wasi_http_guest_traps_total", 1.0),
        ("wasi_http_guest_deadline_exceeded_total", 1.0),
        ("wasi_http_requests_in_flight", 0.0),
    ] {
        let seen = server
            .wait_for_metric(series, |v| v == value, Duration::from_secs(5))
            .await;
        assert_eq!(seen, Some(value), "{series}: {}", server.stderr());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_sigterm_drains_requests_in_flight() {
    let server = ServeProcess::spawn(BIN, &[&guest("p3-fault")]);
    let addr = server.addr;
    let held = tokio::spawn(async move {
        send(
            addr,
            get(&format!("http://{addr}/hold"), &[("x-hold-ms", "700")]),
            false,
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = server.signal("TERM");
    assert!(status.success(), "{status:?}");
    let r = held.await.unwrap().expect("answered before exiting");
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "held\n"));
}

// ---------------------------------------------------------------------------------
// wasi-http run

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Ran {
    let output = Command::new(BIN)
        .arg("run")
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run wasi-http");
    Ran {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Both versions' commands: arguments, environment, exit codes, traps, and
/// outgoing requests under the outbound policy.
async fn run_commands(name: &str, version: &str) {
    let command = guest(name);
    let r = run(&["--env", "CMD_X=1", "--env", "OTHER=no", &command]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with(&format!("hello from a WASI {version} command\n")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("CMD_X=1\n"), "{}", r.stdout);
    assert!(!r.stdout.contains("OTHER"), "{}", r.stdout);
    for code in [0, 1, 7, 255] {
        let r = run(&[&command, "exit", &code.to_string()]);
        assert_eq!(r.code, Some(code), "exit {code}: {}", r.stderr);
    }
    let r = run(&[&command, "trap"]);
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("trapped"), "{}", r.stderr);

    let origin = Origin::start(None, |_req| async {
        http::Response::new(test_support::full("from the origin"))
    })
    .await;
    let target = origin.url("/");
    let r = run(&[
        "--allow-network",
        "127.0.0.1/32",
        &command,
        "fetch",
        &target,
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "status 200\nfrom the origin");
    // Loopback is blocked by default, as for `serve`.
    let r = run(&[&command, "fetch", &target]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("destination-IP-prohibited"),
        "{}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_run_a_command() {
    run_commands("command-p2", "0.2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_run_a_command() {
    run_commands("command-p3", "0.3").await;
}

#[test]
fn run_and_serve_refuse_each_others_components() {
    let r = run(&[&guest("p3-hello")]);
    assert_ne!(r.code, Some(0));
    assert!(r.stderr.contains("wasi-http serve"), "{}", r.stderr);
    let err = test_support::serve_failure(BIN, &[&guest("command-p3")]);
    assert!(err.contains("wasi-http run"), "{err}");
}
