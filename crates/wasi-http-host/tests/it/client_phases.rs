//! The default client's name resolution, per-phase timeouts, guest-timeout maxima and
//! idle-connection reaping (issue 3).

use std::time::{Duration, Instant};

use test_support::{DnsAnswer, DnsServer, Origin};
use wasi_http_client::{Client, ClientConfig, Resolver};
use wasi_http_core::{ErrorCode, IncomingResponse, OutgoingRequest};

use crate::common::*;

/// A client resolving through `dns`.
fn client_via(dns: &DnsServer, tune: impl FnOnce(&mut ClientConfig)) -> Client {
    let mut config = ClientConfig::default();
    config.resolver = Resolver::Nameservers(vec![dns.addr]);
    tune(&mut config);
    Client::new(config)
}

async fn send(client: &Client, uri: &str) -> Result<IncomingResponse, ErrorCode> {
    let request = http::Request::get(uri)
        .body(wasi_http_core::body::empty())
        .expect("request");
    client.send(OutgoingRequest::new(request)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_nameserver_is_a_dns_timeout() {
    let silent = DnsServer::start(DnsAnswer::Silent).await;
    let client = client_via(&silent, |c| c.dns_timeout = Duration::from_millis(300));
    let started = Instant::now();
    let r = send(&client, "http://slow-dns.test/").await;
    assert!(matches!(r, Err(ErrorCode::DnsTimeout)), "{:?}", r.err());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // The guest sees the same code, by name.
    let mut config = ClientConfig::default();
    config.resolver = Resolver::Nameservers(vec![silent.addr]);
    config.dns_timeout = Duration::from_millis(300);
    let svc = service_with_client("client", config);
    let r = call_ok(
        &svc,
        get("http://localhost/", &[("x-url", "http://slow-dns.test/")]),
    )
    .await;
    assert_eq!(r.header("x-error"), "DNS-timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_timeouts_are_cut_to_the_host_maximum() {
    let origin = Origin::start(None, |_req| async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        http::Response::new(test_support::full("late"))
    })
    .await;
    let mut config = ClientConfig::default();
    config.max_guest_timeout = Duration::from_millis(300);
    let svc = service_with_client("client", config);
    let started = Instant::now();
    let r = call_ok(
        &svc,
        get(
            "http://localhost/",
            &[
                ("x-url", &origin.url("/")),
                ("x-first-byte-timeout-ms", "60000"),
            ],
        ),
    )
    .await;
    assert_eq!(r.header("x-error"), "HTTP-response-timeout");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_to_forgotten_hosts_are_closed() {
    let origin = Origin::echo(None).await;
    let mut config = ClientConfig::default();
    config.pool_idle_timeout = Duration::from_millis(200);
    let svc = service_with_client("client", config);
    let r = call_ok(
        &svc,
        get("http://localhost/", &[("x-url", &origin.url("/"))]),
    )
    .await;
    assert_eq!(r.header("x-status"), "200");
    // Kept alive for reuse at first...
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(origin.open(), 1);
    // ...then closed by the pool with no further request to that host.
    let deadline = Instant::now() + Duration::from_secs(3);
    while origin.open() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(origin.open(), 0, "the idle connection outlived its timeout");
}
