//! The default client's connection pool and HTTP/2 (issue 3).

use std::time::Duration;

use test_support::{Origin, TestTls};
use wasi_http_client::ClientConfig;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_requests_reuse_a_handful_of_connections() {
    let origin = Origin::echo(None).await;
    // One service = one client = one pool, shared by every instance.
    let svc = service("client");
    for i in 0..1000 {
        let r = call_ok(
            &svc,
            get("http://localhost/", &[("x-url", &origin.url("/p"))]),
        )
        .await;
        assert_eq!(r.header("x-status"), "200", "request {i}: {}", r.text());
    }
    let opened = origin.accepted();
    assert!(
        opened <= 2,
        "1000 sequential requests opened {opened} connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_dropped_early_does_not_poison_the_pool() {
    let origin = Origin::start(
        None,
        |req: http::Request<hyper::body::Incoming>| async move {
            let big = req.uri().path() == "/big";
            let body = if big {
                vec![7u8; 4 << 20]
            } else {
                b"small".to_vec()
            };
            http::Response::new(test_support::full(body))
        },
    )
    .await;
    let svc = service("client");
    let r = call_ok(
        &svc,
        get("http://localhost/", &[("x-url", &origin.url("/small"))]),
    )
    .await;
    assert_eq!(r.text(), "small");
    let r = call_ok(
        &svc,
        get(
            "http://localhost/",
            &[("x-url", &origin.url("/big")), ("x-drop-body-early", "1")],
        ),
    )
    .await;
    assert_eq!(r.text(), "dropped\n");
    // The connection with unread bytes was discarded, not reused.
    for _ in 0..5 {
        let r = call_ok(
            &svc,
            get("http://localhost/", &[("x-url", &origin.url("/small"))]),
        )
        .await;
        assert_eq!((r.header("x-status"), r.text().as_str()), ("200", "small"));
    }
    assert_eq!(
        origin.accepted(),
        2,
        "one connection before the drop, one after"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_expire() {
    let origin = Origin::echo(None).await;
    let mut client = ClientConfig::default();
    client.pool_idle_timeout = Duration::from_millis(200);
    let svc = service_with_client("client", client);
    let fetch = || {
        call_ok(
            &svc,
            get("http://localhost/", &[("x-url", &origin.url("/"))]),
        )
    };
    fetch().await;
    fetch().await;
    assert_eq!(origin.accepted(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    fetch().await;
    assert_eq!(
        origin.accepted(),
        2,
        "an expired idle connection is not reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_by_alpn_multiplexes_one_connection() {
    let tls = TestTls::new();
    let origin = Origin::echo(Some(tls.server.clone())).await;
    let svc = service_trusting("client", &tls);
    let url = format!("https://localhost:{}/h2", origin.addr.port());
    for _ in 0..20 {
        let r = call_ok(&svc, get("http://localhost/", &[("x-url", &url)])).await;
        assert_eq!(r.header("x-resp-x-origin-version"), "HTTP/2.0");
        assert_eq!(r.header("x-resp-x-origin-path"), "/h2");
    }
    let r = call_ok(
        &svc,
        get(
            "http://localhost/",
            &[("x-url", &url), ("x-concurrent", "16")],
        ),
    )
    .await;
    let expected: String = (0..16).map(|i| format!("{i} 200\n")).collect();
    assert_eq!(r.text(), expected);
    assert_eq!(
        origin.accepted(),
        1,
        "all requests share one HTTP/2 connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_closing_kept_alive_connections_is_not_an_error() {
    // Answers as if keeping the connection alive, then closes it: the pooled
    // connection is dead by the next request, which must go out on a new one.
    let origin =
        test_support::RawServer::respond(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
    let svc = service("client");
    for i in 0..20 {
        let r = call_ok(
            &svc,
            get("http://localhost/", &[("x-url", &origin.url("/"))]),
        )
        .await;
        assert_eq!(
            (r.header("x-status"), r.text().as_str()),
            ("200", "ok"),
            "request {i}"
        );
    }
}

fn with_policy(policy: wasi_http_client::OutboundPolicy) -> wasi_http_host::AnyService {
    let mut client = ClientConfig::default();
    client.policy = policy;
    service_with_client("client", client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_list_denies_other_destinations() {
    let origin = Origin::echo(None).await;
    let mut policy = wasi_http_client::OutboundPolicy::default();
    policy.allow.push(
        format!("http://127.0.0.1:{}", origin.addr.port())
            .parse()
            .unwrap(),
    );
    let svc = with_policy(policy);
    let r = call_ok(
        &svc,
        get("http://localhost/", &[("x-url", &origin.url("/"))]),
    )
    .await;
    assert_eq!(r.header("x-status"), "200");
    let other = format!("http://127.0.0.1:{}/", origin.addr.port() ^ 1);
    let r = call_ok(&svc, get("http://localhost/", &[("x-url", &other)])).await;
    assert_eq!(r.header("x-error"), "HTTP-request-denied");
    let https = format!("https://127.0.0.1:{}/", origin.addr.port());
    let r = call_ok(&svc, get("http://localhost/", &[("x-url", &https)])).await;
    assert_eq!(r.header("x-error"), "HTTP-request-denied");
    assert_eq!(origin.accepted(), 1, "denied requests never connect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_networks_are_blocked_after_dns() {
    let origin = Origin::echo(None).await;
    let svc = with_policy(wasi_http_client::OutboundPolicy::internal_blocked());
    // An IP literal, and a name that resolves to loopback: both refused.
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("http://{host}:{}/", origin.addr.port());
        let r = call_ok(&svc, get("http://localhost/", &[("x-url", &url)])).await;
        assert_eq!(r.header("x-error"), "destination-IP-prohibited", "{host}");
    }
    assert_eq!(origin.accepted(), 0);
    // Explicitly allowed network.
    let mut policy = wasi_http_client::OutboundPolicy::internal_blocked();
    policy.allow_networks.push("127.0.0.1/32".parse().unwrap());
    let svc = with_policy(policy);
    let url = format!("http://localhost:{}/", origin.addr.port());
    let r = call_ok(&svc, get("http://localhost/", &[("x-url", &url)])).await;
    assert_eq!(r.header("x-status"), "200");
}

fn write_temp(name: &str, contents: &str) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("wasi-http-host-it-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_and_extra_ca_from_pem_files() {
    let tls = TestTls::new();
    let origin = Origin::echo(Some(tls.server_requiring_client_cert())).await;
    let url = format!("https://localhost:{}/mtls", origin.addr.port());
    let ca = write_temp("ca.pem", &tls.ca_pem);
    let (cert_pem, key_pem) = tls.client_cert_pem();
    let (cert, key) = (
        write_temp("client.pem", &cert_pem),
        write_temp("client.key", &key_pem),
    );

    let mut options = wasi_http_client::TlsOptions::default();
    options.roots = wasi_http_client::TrustRoots::Empty;
    options.add_ca_pem_file(&ca).unwrap();
    // Without a client certificate the server refuses the handshake.
    let svc = service_with_tls("client", options.clone());
    let r = call_ok(&svc, get("http://localhost/", &[("x-url", &url)])).await;
    // TLS 1.3 rejects after the client's handshake is done: the client sees the alert,
    // or the connection closing if the close wins the race.
    let error = r.header("x-error");
    assert!(
        [
            "TLS-alert-received",
            "TLS-protocol-error",
            "connection-terminated"
        ]
        .contains(&error),
        "{error:?}"
    );
    assert_eq!(origin.accepted(), 1);

    options.set_client_auth_pem_files(&cert, &key).unwrap();
    let svc = service_with_tls("client", options);
    let r = call_ok(&svc, get("http://localhost/", &[("x-url", &url)])).await;
    assert_eq!(r.header("x-status"), "200", "{}", r.text());
    assert_eq!(r.header("x-resp-x-origin-path"), "/mtls");
    for p in [ca, cert, key] {
        let _ = std::fs::remove_file(p);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn danger_accept_invalid_certs_skips_verification_only_when_asked() {
    let tls = TestTls::new();
    let origin = Origin::echo(Some(tls.server.clone())).await;
    let url = format!("https://localhost:{}/", origin.addr.port());
    let r = call_ok(
        &service("client"),
        get("http://localhost/", &[("x-url", &url)]),
    )
    .await;
    assert_eq!(r.header("x-error"), "TLS-certificate-error");
    let mut options = wasi_http_client::TlsOptions::default();
    options.danger_accept_invalid_certs = true;
    let svc = service_with_tls("client", options);
    let r = call_ok(&svc, get("http://localhost/", &[("x-url", &url)])).await;
    assert_eq!(r.header("x-status"), "200");
}

async fn slow_origin(delay: Duration) -> Origin {
    Origin::start(None, move |_req| async move {
        tokio::time::sleep(delay).await;
        http::Response::new(test_support::full("ok"))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_queue_for_the_per_host_connection_limit() {
    let origin = slow_origin(Duration::from_millis(200)).await;
    let mut client = ClientConfig::default();
    client.max_connections_per_host = 2;
    let svc = service_with_client("client", client);
    // Six guests at once, each reading its response to the end.
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let (svc, url) = (svc.clone(), origin.url("/"));
            tokio::spawn(async move {
                call_ok(&svc, get("http://localhost/", &[("x-url", &url)])).await
            })
        })
        .collect();
    for call in calls {
        let r = call.await.unwrap();
        assert_eq!((r.header("x-status"), r.text().as_str()), ("200", "ok"));
    }
    assert_eq!(
        origin.accepted(),
        2,
        "six requests queued on two connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_reached_after_the_queue_wait_are_errors() {
    let origin = slow_origin(Duration::from_millis(1500)).await;
    let request = |svc| {
        let url = origin.url("/");
        async move {
            let headers = [
                ("x-url", url.as_str()),
                ("x-concurrent", "2"),
                ("x-connect-timeout-ms", "300"),
            ];
            let text = call_ok(&svc, get("http://localhost/", &headers))
                .await
                .text();
            // Which of the two gets the slot is up to the scheduler.
            let mut outcomes: Vec<String> = text.lines().map(|l| l[2..].to_owned()).collect();
            outcomes.sort();
            outcomes
        }
    };
    let expected = vec![
        "200".to_owned(),
        "error connection-limit-reached".to_owned(),
    ];
    let mut client = ClientConfig::default();
    client.max_connections_per_host = 1;
    assert_eq!(
        request(service_with_client("client", client)).await,
        expected
    );
    let mut client = ClientConfig::default();
    client.max_concurrent_requests = 1;
    assert_eq!(
        request(service_with_client("client", client)).await,
        expected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_by_prior_knowledge_for_listed_destinations() {
    let origin = Origin::echo(None).await;
    let mut client = ClientConfig::default();
    client
        .h2c_destinations
        .push(format!("127.0.0.1:{}", origin.addr.port()).parse().unwrap());
    let svc = service_with_client("client", client);
    let r = call_ok(
        &svc,
        get(
            "http://localhost/",
            &[("x-url", &origin.url("/grpc")), ("x-concurrent", "4")],
        ),
    )
    .await;
    assert_eq!(r.text(), "0 200\n1 200\n2 200\n3 200\n");
    let r = call_ok(
        &svc,
        get("http://localhost/", &[("x-url", &origin.url("/grpc"))]),
    )
    .await;
    assert_eq!(r.header("x-resp-x-origin-version"), "HTTP/2.0");
    assert_eq!(origin.accepted(), 1);
    // Other destinations keep HTTP/1.1.
    let other = Origin::echo(None).await;
    let r = call_ok(
        &svc,
        get("http://localhost/", &[("x-url", &other.url("/"))]),
    )
    .await;
    assert_eq!(r.header("x-resp-x-origin-version"), "HTTP/1.1");
}
