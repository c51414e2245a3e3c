//! Apps: several components in one server, routed by host and path, each with
//! its own settings and outbound policy, from the settings file.

use std::path::PathBuf;

use test_support::{get, send, Origin, ServeProcess};

use super::{guest, BIN};

/// A settings file in a fresh directory, with the guests it names copied in.
pub(crate) fn app_file(toml: &str) -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(format!(
        "wasi-http-app-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for name in [
        "hello",
        "echo",
        "p3-echo",
        "client",
        "p3-client",
        "fault",
        "p3-mw-header",
        "p3-mw-reject",
        "p3-mw-upper",
    ] {
        std::fs::copy(guest(name), dir.join(format!("{name}.wasm"))).unwrap();
    }
    let file = dir.join("app.toml");
    std::fs::write(&file, toml).unwrap();
    let path = file.to_string_lossy().into_owned();
    (dir, path)
}

pub(crate) async fn request(
    server: &ServeProcess,
    host: &str,
    path: &str,
    extra: &[(&str, &str)],
) -> test_support::Collected {
    let mut headers = vec![("host", host)];
    headers.extend_from_slice(extra);
    // Origin form, so the host is the `Host` header's (an absolute URI's
    // authority would win over it).
    send(server.addr, get(path, &headers), false)
        .await
        .expect("response")
}

const ROUTES: &str = r#"
[components.hello]
source = "hello.wasm"
[components.echo]
source = "echo.wasm"
[components.echo3]
source = "p3-echo.wasm"

[[routes]]
path = "/..."
component = "hello"
[[routes]]
path = "/api/..."
component = "echo"
[[routes]]
path = "/api/v2/..."
component = "echo3"
[[routes]]
path = "/api/health"
component = "hello"
[[routes]]
host = "*.example.com"
path = "/..."
component = "echo"
[[routes]]
host = "admin.example.com"
path = "/admin/..."
component = "echo3"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_host_and_path_with_precedence() {
    let (dir, file) = app_file(ROUTES);
    let metrics = test_support::free_addr();
    let server = ServeProcess::spawn(BIN, &["--config", &file, "--metrics-addr", &metrics]);
    // request → (route the echo guests saw, path-info), or hello's body.
    for (host, path, route, info) in [
        ("x.test", "/", None, ""),
        ("x.test", "/index.html", None, ""),
        ("x.test", "/api", Some("/api/..."), ""),
        ("x.test", "/api/users?x=1", Some("/api/..."), "/users"),
        ("x.test", "/apix", None, ""),
        ("x.test", "/api/v2/users", Some("/api/v2/..."), "/users"),
        ("x.test", "/api/health", None, ""),
        ("a.example.com", "/api/health", Some("/..."), "/api/health"),
        ("example.com", "/", None, ""),
        ("admin.example.com", "/admin/x", Some("/admin/..."), "/x"),
        ("admin.example.com:8080", "/other", Some("/..."), "/other"),
    ] {
        // A client's own copies of the route headers never reach a guest.
        let r = request(
            &server,
            host,
            path,
            &[
                ("x-wasi-http-route", "/forged"),
                ("x-wasi-http-path-info", "/forged"),
            ],
        )
        .await;
        assert_eq!(r.status, 200, "{host}{path}");
        match route {
            None => assert_eq!(r.text(), "Hello, wasi:http!\n", "{host}{path}"),
            Some(route) => {
                assert_eq!(
                    r.header_all("x-echo-h-x-wasi-http-route"),
                    [route],
                    "{host}{path}"
                );
                let seen_info = r.header_all("x-echo-h-x-wasi-http-path-info");
                assert_eq!(seen_info, [info], "{host}{path}");
                // The full original path.
                assert_eq!(r.header("x-echo-path"), path, "{host}{path}");
            }
        }
    }
    let m = server.metrics_addr.expect("metrics");
    let text = send(m, get(&format!("http://{m}/metrics"), &[]), false)
        .await
        .unwrap()
        .text();
    assert!(
        text.contains("wasi_http_component_requests_total{component=\"echo3\",class=\"2xx\"} 2"),
        "{text}"
    );
    let access = server.wait_for_log_lines("wasi_http::access", 11);
    assert!(
        access
            .iter()
            .any(|l| l.contains("component=\"echo\"") || l.contains("component=echo")),
        "{access:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_is_a_404_counted_in_metrics() {
    let (dir, file) = app_file(
        "[components.echo]\nsource = \"echo.wasm\"\n[[routes]]\npath = \"/only\"\ncomponent = \"echo\"\n",
    );
    let metrics = test_support::free_addr();
    let server = ServeProcess::spawn(BIN, &["--config", &file, "--metrics-addr", &metrics]);
    assert_eq!(request(&server, "x.test", "/only", &[]).await.status, 200);
    assert_eq!(
        request(&server, "x.test", "/only/not", &[]).await.status,
        404
    );
    assert_eq!(request(&server, "x.test", "/", &[]).await.status, 404);
    assert_eq!(
        server
            .metric("wasi_http_requests_rejected_total{reason=\"no_route\"}")
            .await,
        Some(2.0)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_component_has_its_own_policy_and_settings() {
    let origin = Origin::echo(None).await;
    let (dir, file) = app_file(
        r#"
request-timeout = "0s"
[components.open]
source = "client.wasm"
allow-network = ["127.0.0.1/32"]
[components.closed]
source = "client.wasm"
[components.slow]
source = "fault.wasm"
request-timeout = "500ms"
[[routes]]
path = "/open/..."
component = "open"
[[routes]]
path = "/closed/..."
component = "closed"
[[routes]]
path = "/..."
component = "slow"
"#,
    );
    let server = ServeProcess::spawn(BIN, &["--config", &file]);
    let target = origin.url("/x");
    let r = request(&server, "x.test", "/open/", &[("x-url", &target)]).await;
    assert_eq!(r.header("x-status"), "200", "{}", r.text());
    // The other component's allow-list does not let this one out.
    let r = request(&server, "x.test", "/closed/", &[("x-url", &target)]).await;
    assert_eq!(r.header("x-error"), "destination-IP-prohibited");
    assert_eq!(origin.accepted(), 1);
    // Its own request timeout, where the server has none.
    let r = request(&server, "x.test", "/busy-loop", &[]).await;
    assert_eq!(r.status, 504);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn app_files_that_are_wrong_say_why() {
    for (toml, says) in [
        (
            "[components.a]\nsource = \"hello.wasm\"\naddr = \"127.0.0.1:1\"\n[[routes]]\npath = \"/\"\ncomponent = \"a\"\n",
            "`addr` is the server's setting",
        ),
        (
            "[components.a]\nsource = \"hello.wasm\"\n[[routes]]\npath = \"/\"\ncomponent = \"a\"\n[[routes]]\npath = \"/\"\ncomponent = \"a\"\n",
            "two routes for path `/`",
        ),
        (
            "[components.a]\nsource = \"missing.wasm\"\n[[routes]]\npath = \"/\"\ncomponent = \"a\"\n",
            "missing.wasm",
        ),
        (
            "[components.a]\nsource = \"hello.wasm\"\nrequest-timeout = \"soon\"\n[[routes]]\npath = \"/\"\ncomponent = \"a\"\n",
            "[components.a]",
        ),
    ] {
        let (dir, file) = app_file(toml);
        let err = test_support::serve_failure(BIN, &["--config", &file]);
        assert!(err.contains(says), "{toml}\n{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
    let (dir, file) = app_file(ROUTES);
    let err = test_support::serve_failure(BIN, &["--config", &file, &guest("hello")]);
    assert!(err.contains("give no COMPONENT"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
