//! The incoming side through the async embedder API: hello and echo guests.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

use crate::common::*;

both!(hello_get, "hello", async |guest: &str| {
    let svc = service(guest);
    let r = call_ok(&svc, get("http://localhost/", &[])).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Hello, wasi:http!\n");
    assert_eq!(r.header("content-length"), "18");
    assert_eq!(r.header("content-type"), "text/plain; charset=utf-8");
});

both!(
    echo_reports_request_line_and_repeated_headers,
    "echo",
    async |guest: &str| {
        let svc = service(guest);
        let req = http::Request::get("/some/path?x=1&y=2")
            .header("host", "example.com:1234")
            .header("x-rep", "a")
            .header("x-rep", "b")
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap();
        let r = call_ok(&svc, req).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-echo-method"), "GET");
        assert_eq!(r.header("x-echo-path"), "/some/path?x=1&y=2");
        assert_eq!(r.header("x-echo-scheme"), "http");
        assert_eq!(r.header("x-echo-authority"), "example.com:1234");
        assert_eq!(r.header_all("x-echo-h-x-rep"), vec!["a", "b"]);
        assert_eq!(r.header("x-echo-h-host"), "example.com:1234");
    }
);

both!(
    echo_post_put_and_unknown_method,
    "echo",
    async |guest: &str| {
        let svc = service(guest);
        let r = call_ok(&svc, post("http://localhost/p", &[], "hello body")).await;
        assert_eq!(
            (r.status.as_u16(), r.header("x-echo-method")),
            (200, "POST")
        );
        assert_eq!(r.text(), "hello body");

        let req = http::Request::put("http://localhost/p")
            .body(http_body_util::Full::new(Bytes::from("put body")))
            .unwrap();
        let r = call_ok(&svc, req).await;
        assert_eq!(
            (r.header("x-echo-method"), r.text().as_str()),
            ("PUT", "put body")
        );

        let req = http::Request::builder()
            .method("FROBNICATE")
            .uri("http://localhost/p")
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap();
        let r = call_ok(&svc, req).await;
        assert_eq!(r.header("x-echo-method"), "FROBNICATE");
    }
);

both!(echo_long_path, "echo", async |guest: &str| {
    let svc = service(guest);
    let path = format!("/{}", "a".repeat(8000));
    let r = call_ok(&svc, get(&format!("http://localhost{path}?q"), &[])).await;
    assert_eq!(r.header("x-echo-path"), format!("{path}?q"));
});

both!(
    echo_streams_a_large_body_with_trailers,
    "echo",
    async |guest: &str| {
        let svc = service(guest);
        const CHUNK: usize = 64 * 1024;
        const TOTAL: usize = 10 * 1024 * 1024;
        let chunks = (0..TOTAL / CHUNK)
            .map(|i| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![(i % 251) as u8; CHUNK]))));
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-checksum", "abc".parse().unwrap());
        let frames =
            futures::stream::iter(chunks.chain(std::iter::once(Ok(Frame::trailers(trailers)))));
        let req = http::Request::post("http://localhost/big")
            .body(StreamBody::new(frames))
            .unwrap();
        let response = svc
            .handle(req, RequestContext::new(http::uri::Scheme::HTTP))
            .await;
        assert_eq!(response.status(), 200);
        let collected = response.into_body().collect().await.expect("body");
        let trailers = collected.trailers().cloned().expect("trailers echoed");
        assert_eq!(trailers.get("x-checksum").unwrap(), "abc");
        let body = collected.to_bytes();
        assert_eq!(body.len(), TOTAL);
        for (i, chunk) in body.chunks(CHUNK).enumerate() {
            assert!(
                chunk.iter().all(|b| *b == (i % 251) as u8),
                "chunk {i} corrupted"
            );
        }
    }
);

both!(
    incoming_field_limits_answer_431,
    "echo",
    async |guest: &str| {
        let svc = service(guest);
        let mut builder = http::Request::get("http://localhost/");
        for i in 0..300 {
            builder = builder.header(format!("x-h-{i}"), "v");
        }
        let r = call_ok(&svc, builder.body(Default::default()).unwrap()).await;
        assert_eq!(r.status, 431);

        let big = "v".repeat(70 * 1024);
        let r = call_ok(&svc, get("http://localhost/", &[("x-big", &big)])).await;
        assert_eq!(r.status, 431);

        // Still serving.
        let r = call_ok(&svc, get("http://localhost/", &[])).await;
        assert_eq!(r.status, 200);
    }
);

both!(
    slow_reader_gets_the_whole_body_and_early_drop_does_not_trap,
    "echo",
    async |guest: &str| {
        let svc = service(guest);
        let size = 8 * 1024 * 1024;
        let response = svc
            .handle(
                get(
                    "http://localhost/",
                    &[("x-echo-generate", &size.to_string())],
                ),
                RequestContext::new(http::uri::Scheme::HTTP),
            )
            .await;
        let mut body = response.into_body();
        let mut total = 0;
        let mut frames = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.expect("frame");
            if let Some(data) = frame.data_ref() {
                total += data.len();
                frames += 1;
                if frames % 8 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
        assert_eq!(total, size);

        // Dropping the body early: the guest sees a closed stream, not a trap, and the
        // service keeps serving.
        let response = svc
            .handle(
                get("http://localhost/", &[("x-echo-generate", "67108864")]),
                RequestContext::new(http::uri::Scheme::HTTP),
            )
            .await;
        let mut body = response.into_body();
        let _ = body.frame().await;
        drop(body);
        let r = call_ok(&svc, get("http://localhost/", &[])).await;
        assert_eq!(r.status, 200);
    }
);

both!(
    response_content_length_mismatch_aborts_the_body,
    "echo",
    async |guest: &str| {
        let svc = service(guest);
        // Declares 100 bytes, echoes 5: too few.
        let r = call(
            &svc,
            post(
                "http://localhost/",
                &[("x-echo-content-length", "100")],
                "12345",
            ),
        )
        .await;
        assert!(
            r.is_err(),
            "short body must not be delivered as complete: {r:?}"
        );
        // Declares 3 bytes, echoes 5: too many.
        let r = call(
            &svc,
            post(
                "http://localhost/",
                &[("x-echo-content-length", "3")],
                "12345",
            ),
        )
        .await;
        assert!(
            r.is_err(),
            "long body must not be truncated silently: {r:?}"
        );
        // Exact: fine.
        let r = call_ok(
            &svc,
            post(
                "http://localhost/",
                &[("x-echo-content-length", "5")],
                "12345",
            ),
        )
        .await;
        assert_eq!(r.text(), "12345");
    }
);

// ---------------------------------------------------------------------------------
// WASI 0.3 only: streams passed through, and many requests in one instance.

/// A request body (with trailers) the guest hands straight to its response as
/// contents: host to host, through the same queue and limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_echo_forwards_the_request_stream_as_the_response_body() {
    let svc = service("p3-echo");
    let body: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-sum", "42".parse().unwrap());
    let frames = futures::stream::iter(vec![
        Ok::<_, Infallible>(Frame::data(Bytes::from(body.clone()))),
        Ok(Frame::trailers(trailers)),
    ]);
    let req = http::Request::post("http://localhost/f")
        .header("x-echo-forward", "1")
        .body(StreamBody::new(frames))
        .unwrap();
    let r = call(&svc, req).await.expect("complete");
    assert_eq!(r.status, 200);
    assert!(r.body == body, "forwarded body differs");
    assert_eq!(r.trailers.expect("trailers").get("x-sum").unwrap(), "42");
}

/// Requests that wait overlap in one instance (the 0.3 world's point), and one
/// instance takes no more than its concurrency at once.
#[tokio::test]
async fn p3_concurrent_requests_share_an_instance_up_to_its_concurrency() {
    let mut config = config();
    let mut reuse = wasi_http_host::InstanceReuse::new(1000);
    reuse.max_concurrent = 4;
    config.instance_reuse = Some(reuse);
    let svc = service_with("p3-echo", config);
    let started = std::time::Instant::now();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                call_ok(
                    &svc,
                    get("http://localhost/", &[("x-echo-delay-ms", "300")]),
                )
                .await
            })
        })
        .collect();
    let mut by_instance: HashMap<String, Vec<u32>> = HashMap::new();
    for call in calls {
        let r = call.await.unwrap();
        assert_eq!(r.status, 200);
        let in_flight: u32 = r.header("x-echo-in-flight").parse().unwrap();
        by_instance
            .entry(r.header("x-echo-instance").to_owned())
            .or_default()
            .push(in_flight);
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(1500),
        "they overlapped: {elapsed:?}"
    );
    // 8 requests, 4 at a time per instance: two instances, each serving several at once.
    assert_eq!(by_instance.len(), 2, "{by_instance:?}");
    for (id, seen) in &by_instance {
        assert_eq!(seen.len(), 4, "instance {id}: {seen:?}");
        assert!(seen.iter().any(|n| *n >= 2), "instance {id}: {seen:?}");
        assert!(seen.iter().all(|n| *n <= 4), "instance {id}: {seen:?}");
    }
}

/// An instance serves `max_requests` requests, then a new one takes over.
#[tokio::test]
async fn p3_instances_are_retired_after_their_requests() {
    let mut config = config();
    config.instance_reuse = Some(wasi_http_host::InstanceReuse::new(2));
    let svc = service_with("p3-echo", config);
    let mut ids = Vec::new();
    for _ in 0..4 {
        let r = call_ok(&svc, get("http://localhost/", &[])).await;
        ids.push(r.header("x-echo-instance").to_owned());
    }
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[2], ids[3]);
    assert_ne!(ids[0], ids[2]);
}

/// A client that goes away cancels its request only: the instance and the other
/// requests on it go on.
#[tokio::test]
async fn p3_a_cancelled_request_leaves_the_others_on_its_instance_alone() {
    let svc = service("p3-echo");
    let slow = {
        let svc = svc.clone();
        tokio::spawn(async move {
            call_ok(
                &svc,
                get("http://localhost/", &[("x-echo-delay-ms", "400")]),
            )
            .await
        })
    };
    // A request whose body never ends, dropped after a moment.
    let (mut tx, body) = body_channel();
    let req = http::Request::post("http://localhost/").body(body).unwrap();
    let svc2 = svc.clone();
    let abandoned = tokio::spawn(async move {
        let response = svc2
            .handle(req, RequestContext::new(http::uri::Scheme::HTTP))
            .await;
        let mut body = response.into_body();
        // The echoed first chunk arrives; then the client gives up.
        let _ = body.frame().await;
    });
    tx.send(Bytes::from_static(b"first")).await;
    tokio::time::timeout(Duration::from_secs(5), abandoned)
        .await
        .expect("the first chunk comes back")
        .unwrap();
    drop(tx);
    let r = slow.await.unwrap();
    assert_eq!(r.status, 200);
    let after = call_ok(&svc, get("http://localhost/", &[])).await;
    assert_eq!(after.status, 200);
    assert_eq!(after.header("x-echo-instance"), r.header("x-echo-instance"));
}

/// A body a test writes piece by piece.
type ChannelBody = StreamBody<futures::channel::mpsc::Receiver<Result<Frame<Bytes>, Infallible>>>;

fn body_channel() -> (BodySender, ChannelBody) {
    let (tx, rx) = futures::channel::mpsc::channel(4);
    (BodySender(tx), StreamBody::new(rx))
}

struct BodySender(futures::channel::mpsc::Sender<Result<Frame<Bytes>, Infallible>>);

impl BodySender {
    async fn send(&mut self, data: Bytes) {
        use futures::SinkExt;
        let _ = self.0.send(Ok(Frame::data(data))).await;
    }
}

/// Counts instantiations.
#[derive(Default)]
pub(crate) struct Instantiations(pub(crate) std::sync::atomic::AtomicUsize);

impl wasi_http_core::ServiceEvents for Instantiations {
    fn instantiated(&self, _elapsed: Duration) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Requests arriving together take an instance when their guest task starts, not
/// when they arrive: the instances freed by the first serve the rest, instead of one
/// new instance (and its memory) per request that arrived at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_requests_arriving_together_share_reused_instances() {
    let mut config = config();
    config.instance_reuse = Some(wasi_http_host::InstanceReuse::new(1000));
    let svc = service_with("hello", config);
    let events = std::sync::Arc::new(Instantiations::default());
    let calls = (0..32).map(|_| {
        let mut cx = wasi_http_core::RequestContext::new(http::uri::Scheme::HTTP);
        cx.events = Some(events.clone());
        let response = wasi_http_core::Handler::handle(&svc, get("http://localhost/", &[]), cx);
        async move { test_support::collect(response.await).await.expect("body") }
    });
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.status, 200);
    }
    let n = events.0.load(std::sync::atomic::Ordering::Relaxed);
    assert!(n <= 12, "{n} instances for 32 requests on 2 threads");
}
