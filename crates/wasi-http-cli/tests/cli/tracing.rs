//! OpenTelemetry: spans to an OTLP/HTTP receiver with the right links, a
//! client's trace continued into the outgoing requests of a guest, and a dead
//! collector that costs the requests nothing.

use std::time::{Duration, Instant};

use test_support::{get, send, Origin, OtlpReceiver, RefusingPort, ServeProcess};

use super::{guest, url, BIN};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

async fn traced_fetch(
    server: &ServeProcess,
    origin: &Origin,
    traceparent: &str,
) -> test_support::Collected {
    send(
        server.addr,
        get(
            &url(server, "/"),
            &[("x-url", &origin.url("/hop")), ("traceparent", traceparent)],
        ),
        false,
    )
    .await
    .expect("response")
}

async fn p2_and_p3(client: &str) {
    let receiver = OtlpReceiver::start().await;
    let origin = Origin::echo(None).await;
    let server = ServeProcess::spawn(
        BIN,
        &[
            &guest(client),
            "--allow-network",
            "127.0.0.1/32",
            "--otlp-endpoint",
            &receiver.endpoint(),
        ],
    );
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let r = traced_fetch(&server, &origin, &traceparent).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The origin got the client's trace, under the outgoing request's span.
    let sent = r.header("x-resp-x-origin-h-traceparent").to_owned();
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", TRACE, "01"),
        "{sent}"
    );

    let spans = receiver.wait_for(TRACE, 4, Duration::from_secs(10)).await;
    let find = |name: &str, kind: i32| {
        spans
            .iter()
            .find(|s| s.name == name && s.kind == kind)
            .unwrap_or_else(|| panic!("no {name} span of kind {kind} in {spans:#?}"))
    };
    let server_span = find("GET", 2);
    assert_eq!(server_span.parent, PARENT, "continues the client's trace");
    assert_eq!(
        server_span.attribute("http.response.status_code"),
        Some("200")
    );
    assert_eq!(server_span.attribute("url.path"), Some("/"));
    assert_eq!(server_span.service, "wasi-http");
    let handle = find("handle", 1);
    assert_eq!(handle.parent, server_span.span_id);
    let outgoing = find("GET", 3);
    assert_eq!(
        outgoing.parent, handle.span_id,
        "outgoing requests are the guest's"
    );
    assert_eq!(outgoing.span_id, parts[2], "the origin saw the client span");
    assert_eq!(outgoing.attribute("server.address"), Some("127.0.0.1"));
    assert_eq!(outgoing.attribute("http.response.status_code"), Some("200"));
    assert_eq!(
        outgoing.attribute("wasi_http.connection.reused"),
        Some("false")
    );
    let instantiate = find("instantiate", 1);
    assert_eq!(instantiate.parent, server_span.span_id);

    // A guest's own traceparent is left alone.
    let r = send(
        server.addr,
        get(
            &url(&server, "/"),
            &[
                ("x-url", &origin.url("/own")),
                (
                    "x-fwd-traceparent",
                    "00-11111111111111111111111111111111-2222222222222222-00",
                ),
            ],
        ),
        false,
    )
    .await
    .expect("response");
    assert_eq!(
        r.header("x-resp-x-origin-h-traceparent"),
        "00-11111111111111111111111111111111-2222222222222222-00"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_spans_link_server_guest_and_outgoing_requests() {
    p2_and_p3("client").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_spans_link_server_guest_and_outgoing_requests() {
    p2_and_p3("p3-client").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_traces_are_propagated_not_exported() {
    let receiver = OtlpReceiver::start().await;
    let origin = Origin::echo(None).await;
    let server = ServeProcess::spawn(
        BIN,
        &[
            &guest("client"),
            "--allow-network",
            "127.0.0.1/32",
            "--otlp-endpoint",
            &receiver.endpoint(),
            "--trace-sample-ratio",
            "0",
        ],
    );
    // No traceparent, ratio 0: a new trace, not recorded, still propagated.
    let r = send(
        server.addr,
        get(&url(&server, "/"), &[("x-url", &origin.url("/"))]),
        false,
    )
    .await
    .expect("response");
    let sent = r.header("x-resp-x-origin-h-traceparent").to_owned();
    assert!(sent.ends_with("-00"), "{sent}");
    // A sampled parent still decides for its trace.
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    traced_fetch(&server, &origin, &traceparent).await;
    let spans = receiver.wait_for(TRACE, 4, Duration::from_secs(10)).await;
    assert!(spans.len() >= 4, "{spans:#?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let unsampled = sent.split('-').nth(1).unwrap_or_default();
    assert!(receiver.spans().iter().all(|s| s.trace_id != unsampled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_costs_requests_nothing() {
    let dead = RefusingPort::new();
    let metrics = test_support::free_addr();
    let server = ServeProcess::spawn(
        BIN,
        &[
            &guest("hello"),
            "--otlp-endpoint",
            &format!("http://{}", dead.addr),
            "--metrics-addr",
            &metrics,
        ],
    );
    let started = Instant::now();
    for _ in 0..200 {
        let r = send(server.addr, get(&url(&server, "/"), &[]), false)
            .await
            .expect("response");
        assert_eq!(r.status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let failed = server
        .wait_for_metric(
            "wasi_http_trace_export_failures_total",
            |v| v >= 1.0,
            Duration::from_secs(10),
        )
        .await;
    assert!(failed.is_some_and(|v| v >= 1.0), "{}", server.stderr());
    assert!(
        server
            .metric("wasi_http_trace_spans_dropped_total")
            .await
            .unwrap_or(0.0)
            >= 1.0
    );
    assert!(
        server.stderr().contains("trace export failed"),
        "{}",
        server.stderr()
    );
}
