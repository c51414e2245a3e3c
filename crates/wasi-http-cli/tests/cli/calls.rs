//! Components of an app that call each other without the network: internal
//! calls (`http://NAME.internal/`) and middleware chains (WASI 0.3).

use bytes::Bytes;
use http_body_util::Full;
use test_support::{send, ServeProcess};

use super::app::{app_file, request};
use super::BIN;

/// A POST of `body` to the server, with `host` and extra headers.
async fn post(
    server: &ServeProcess,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> test_support::Collected {
    let mut builder = http::Request::post(path).header("host", "app.test");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Full::new(Bytes::from(body))).unwrap();
    send(server.addr, request, false).await.expect("response")
}

/// A body of `len` bytes that is not all one byte.
fn body(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[i % 36])
        .collect()
}

fn calls_app(client: &str, echo: &str, call: &str) -> String {
    format!(
        r#"
[components.front]
source = "{client}.wasm"
{call}
[components.echo]
source = "{echo}.wasm"
[[routes]]
path = "/front/..."
component = "front"
[[routes]]
path = "/echo/..."
component = "echo"
"#
    )
}

/// `len`: the 0.2 client guest sends all of a body before it reads the
/// response, so a body that outgrows the bounded queues both ways (about
/// 1 MiB) would wait forever for it to read, as it would with a streaming
/// origin over the network (whose socket buffers are larger); the 0.3 one
/// reads and writes at once.
async fn internal_call_streams_both_ways(client: &str, echo: &str, len: usize) {
    let (dir, file) = app_file(&calls_app(client, echo, "call = [\"echo\"]"));
    let metrics = test_support::free_addr();
    let server = ServeProcess::spawn(BIN, &["--config", &file, "--metrics-addr", &metrics]);
    let sent = body(len);
    let r = post(
        &server,
        "/front/",
        &[
            ("x-url", "http://echo.internal/in/side?q=1"),
            ("x-method", "POST"),
            ("x-forward-body", "1"),
            ("x-fwd-x-wasi-http-route", "/forged"),
        ],
        sent.clone(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-status"), "200", "{:?}", r.headers);
    // The callee saw the caller's request: its path, its authority, no route
    // header forged by the caller, and all of the body, streamed back.
    assert_eq!(r.header("x-resp-x-echo-path"), "/in/side?q=1");
    assert_eq!(r.header("x-resp-x-echo-authority"), "echo.internal");
    assert_eq!(r.header("x-resp-x-echo-h-x-wasi-http-route"), "");
    assert_eq!(r.body.len(), sent.len());
    assert!(r.body == sent, "the body came back changed");
    // Counted for both components.
    for component in ["front", "echo"] {
        let name = format!(
            "wasi_http_component_requests_total{{component=\"{component}\",class=\"2xx\"}}"
        );
        assert_eq!(server.metric(&name).await, Some(1.0), "{name}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_internal_call_streams_both_ways() {
    internal_call_streams_both_ways("client", "echo", 512 << 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_internal_call_streams_both_ways() {
    internal_call_streams_both_ways("p3-client", "p3-echo", 8 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_call_not_listed_is_denied() {
    // `front` lists no callee; `echo` is a component of the app all the same.
    let (dir, file) = app_file(&calls_app("p3-client", "echo", ""));
    let server = ServeProcess::spawn(BIN, &["--config", &file]);
    let r = request(
        &server,
        "app.test",
        "/front/",
        &[("x-url", "http://echo.internal/")],
    )
    .await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("x-error"), "HTTP-request-denied");
    // Not a component at all: the same.
    let r = request(
        &server,
        "app.test",
        "/front/",
        &[("x-url", "http://nobody.internal/")],
    )
    .await;
    assert_eq!(r.header("x-error"), "HTTP-request-denied");
    // Said in the log (which is written in batches: wait for it).
    let lines = server.wait_for_log_lines_within(
        "internal call denied",
        2,
        std::time::Duration::from_secs(10),
    );
    assert_eq!(lines.len(), 2, "{}", server.stderr());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_call_loop_is_cut_at_depth_508() {
    let (dir, file) = app_file(
        r#"
[components.loop]
source = "p3-client.wasm"
call = ["loop"]
[[routes]]
path = "/..."
component = "loop"
"#,
    );
    let metrics = test_support::free_addr();
    let server = ServeProcess::spawn(BIN, &["--config", &file, "--metrics-addr", &metrics]);
    // Every level calls itself again and answers with what it got back.
    let r = request(
        &server,
        "app.test",
        "/",
        &[("x-url", "http://loop.internal/"), ("x-loop", "1")],
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.header("x-error"), "loop-detected");
    // The request from the network and 508 calls, each answered.
    let answered = server
        .metric("wasi_http_component_requests_total{component=\"loop\",class=\"5xx\"}")
        .await;
    assert_eq!(answered, Some(509.0));
    // Every guest ended (and gave its slot back).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.metric("wasi_http_requests_in_flight").await != Some(0.0) {
        assert!(std::time::Instant::now() < deadline, "guests still running");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

const CHAIN: &str = r#"
[components.reject]
source = "p3-mw-reject.wasm"
[components.header]
source = "p3-mw-header.wasm"
[components.upper]
source = "p3-mw-upper.wasm"
[components.echo]
source = "p3-echo.wasm"
[[routes]]
path = "/chain/..."
chain = ["reject", "header", "upper", "echo"]
[[routes]]
path = "/echo"
component = "echo"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_chain_of_middleware_in_front_of_echo() {
    let (dir, file) = app_file(CHAIN);
    let metrics = test_support::free_addr();
    let server = ServeProcess::spawn(BIN, &["--config", &file, "--metrics-addr", &metrics]);
    let sent = body(2 << 20);
    let r = post(
        &server,
        "/chain/x?y=1",
        &[("authorization", "Bearer let-me-in")],
        sent.clone(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The echo guest saw the request as routed, with the header the header
    // middleware added; its response came back through all of them.
    assert_eq!(r.header("x-echo-path"), "/chain/x?y=1");
    assert_eq!(r.header("x-echo-h-x-mw-header"), "added");
    assert_eq!(r.header("x-echo-h-x-wasi-http-route"), "/chain/...");
    assert_eq!(r.header("x-mw-header-seen"), "1");
    assert_eq!(r.body, sent.to_ascii_uppercase());
    // The reject middleware answers on its own: nothing after it runs.
    let r = post(&server, "/chain/x", &[], b"no".to_vec()).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.text(), "denied by p3-mw-reject\n");
    let counted = |c: &str, class: &str| {
        format!("wasi_http_component_requests_total{{component=\"{c}\",class=\"{class}\"}}")
    };
    assert_eq!(server.metric(&counted("reject", "4xx")).await, Some(1.0));
    for c in ["reject", "header", "upper", "echo"] {
        assert_eq!(server.metric(&counted(c, "2xx")).await, Some(1.0), "{c}");
    }
    // The echo guest on its own route is not behind the chain.
    let r = request(&server, "app.test", "/echo", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-mw-header-seen"), "");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn chains_of_what_is_not_middleware_say_why() {
    for (chain, says) in [
        (r#"["echo2", "echo"]"#, "is a WASI 0.2 component"),
        (r#"["echo3", "echo"]"#, "does not import wasi:http/handler"),
    ] {
        let (dir, file) = app_file(&format!(
            "[components.echo]\nsource = \"p3-echo.wasm\"\n[components.echo2]\nsource = \"echo.wasm\"\n\
             [components.echo3]\nsource = \"p3-echo.wasm\"\n[[routes]]\npath = \"/...\"\nchain = {chain}\n"
        ));
        let err = test_support::serve_failure(BIN, &["--config", &file]);
        assert!(err.contains(says), "{chain}\n{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_call_keeps_the_guests_first_byte_timeout() {
    let (dir, file) = app_file(&calls_app("p3-client", "p3-echo", "call = [\"echo\"]"));
    let server = ServeProcess::spawn(BIN, &["--config", &file]);
    let started = std::time::Instant::now();
    let r = request(
        &server,
        "app.test",
        "/front/",
        &[
            ("x-url", "http://echo.internal/"),
            ("x-first-byte-timeout-ms", "200"),
            ("x-fwd-x-echo-delay-ms", "5000"),
        ],
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.header("x-error"), "connection-read-timeout");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    let _ = std::fs::remove_dir_all(dir);
}

/// The README's app, with test guests for its components: routes, a chain and
/// an internal call, as documented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_app_serves_as_documented() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let start = readme
        .find("```toml\n# app.toml")
        .expect("the README's app example");
    let block = &readme[start + "```toml\n".len()..];
    let toml = &block[..block.find("```").expect("the end of the example")];
    let toml = toml
        .replace("\"site.wasm\"", "\"hello.wasm\"")
        .replace("\"api.wasm\"", "\"echo.wasm\"")
        .replace("\"admin.wasm\"", "\"p3-client.wasm\"")
        .replace("\"auth.wasm\"", "\"p3-mw-reject.wasm\"");
    let (dir, file) = app_file(&toml);
    let server = ServeProcess::spawn(BIN, &["--config", &file]);
    let r = request(&server, "www.example.com", "/", &[]).await;
    assert_eq!(r.text(), "Hello, wasi:http!\n");
    let r = request(&server, "www.example.com", "/api/users", &[]).await;
    assert_eq!(r.header("x-echo-h-x-wasi-http-route"), "/api/...");
    // admin.example.com: the auth middleware, then admin, which calls api.
    let r = request(
        &server,
        "admin.example.com",
        "/",
        &[("x-url", "http://api.internal/inside")],
    )
    .await;
    assert_eq!(r.status, 401);
    let r = request(
        &server,
        "admin.example.com",
        "/",
        &[
            ("x-url", "http://api.internal/inside"),
            ("authorization", "Bearer let-me-in"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-resp-x-echo-path"), "/inside");
    let _ = std::fs::remove_dir_all(dir);
}
