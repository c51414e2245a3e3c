//! Integration tests of the outbound client on its own (no guest): name resolution
//! with typed failures, the blocked-network policy after DNS, per-phase timeouts,
//! and the counters metrics read.

mod props;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use test_support::{DnsAnswer, DnsServer, Origin, RawScript, RawServer};
use wasi_http_client::{Client, ClientConfig, OutboundPolicy, Resolver};
use wasi_http_core::{ErrorCode, IncomingResponse, OutgoingRequest, WasiHttpHooks};

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

fn rcode(result: Result<IncomingResponse, ErrorCode>) -> Option<String> {
    match result {
        Err(ErrorCode::DnsError(payload)) => payload.rcode,
        Err(other) => panic!("expected DNS-error, got {other:?}"),
        Ok(r) => panic!("expected DNS-error, got {}", r.response.status()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_failures_carry_the_servers_response_code() {
    let nx = DnsServer::start(DnsAnswer::Rcode(3)).await;
    let r = send(&client_via(&nx, |_| {}), "http://no-such-name.test/").await;
    assert_eq!(rcode(r).as_deref(), Some("NXDOMAIN"));

    let servfail = DnsServer::start(DnsAnswer::Rcode(2)).await;
    let r = send(&client_via(&servfail, |_| {}), "http://broken-zone.test/").await;
    assert_eq!(rcode(r).as_deref(), Some("SERVFAIL"));

    let refused = DnsServer::start(DnsAnswer::Rcode(5)).await;
    let r = send(&client_via(&refused, |_| {}), "http://elsewhere.test/").await;
    assert_eq!(rcode(r).as_deref(), Some("REFUSED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_resolving_to_loopback_is_blocked_unless_allowed() {
    let origin = Origin::echo(None).await;
    let dns = DnsServer::start(DnsAnswer::A(Ipv4Addr::LOCALHOST)).await;
    let url = format!("http://origin.test:{}/", origin.addr.port());

    let blocked = client_via(&dns, |c| c.policy = OutboundPolicy::internal_blocked());
    let r = send(&blocked, &url).await;
    assert!(
        matches!(r, Err(ErrorCode::DestinationIpProhibited)),
        "{:?}",
        r.err()
    );
    assert_eq!(
        origin.accepted(),
        0,
        "nothing may reach the blocked address"
    );

    let allowed = client_via(&dns, |_| {});
    let r = send(&allowed, &url).await.expect("resolved and reached");
    assert_eq!(r.response.status(), 200);
    assert_eq!(origin.accepted(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tls_handshake_times_out_on_its_own_budget() {
    // Accepts TCP, never says a word: the TLS handshake hangs.
    let mute = RawServer::start(RawScript {
        steps: Vec::new(),
        hold_open: true,
    })
    .await;
    let mut config = ClientConfig::default();
    config.tls_handshake_timeout = Duration::from_millis(300);
    let client = Client::new(config);
    let started = Instant::now();
    let r = send(&client, &format!("https://127.0.0.1:{}/", mute.addr.port())).await;
    assert!(
        matches!(r, Err(ErrorCode::ConnectionTimeout)),
        "{:?}",
        r.err()
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_is_the_default_hooks_and_counts_outcomes() {
    let origin = Origin::echo(None).await;
    let client = Client::default();
    let hooks: &dyn WasiHttpHooks = &client;
    let request = http::Request::get(origin.url("/x"))
        .body(wasi_http_core::body::empty())
        .expect("request");
    let response = hooks
        .send_request(OutgoingRequest::new(request))
        .expect("sent")
        .await
        .expect("response");
    assert_eq!(response.response.status(), 200);
    drop(response);
    let refused = send(&client, "http://127.0.0.1:1/").await;
    assert!(
        matches!(refused, Err(ErrorCode::ConnectionRefused)),
        "{:?}",
        refused.err()
    );
    let stats = client.stats();
    assert_eq!(
        stats.requests,
        vec![("response", 1), ("connection-refused", 1)]
    );
    assert_eq!(stats.connections_opened, 2);
    assert_eq!(stats.connections_reused, 0);
}
