//! The incoming side through the async embedder API: hello and echo guests.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_get() {
    let svc = service("hello");
    let r = call_ok(&svc, get("http://localhost/", &[])).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Hello, wasi:http!\n");
    assert_eq!(r.header("content-length"), "18");
    assert_eq!(r.header("content-type"), "text/plain; charset=utf-8");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_reports_request_line_and_repeated_headers() {
    let svc = service("echo");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_post_put_and_unknown_method() {
    let svc = service("echo");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_long_path() {
    let svc = service("echo");
    let path = format!("/{}", "a".repeat(8000));
    let r = call_ok(&svc, get(&format!("http://localhost{path}?q"), &[])).await;
    assert_eq!(r.header("x-echo-path"), format!("{path}?q"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_streams_a_large_body_with_trailers() {
    let svc = service("echo");
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
        .handle(
            req,
            wasi_http_core::RequestContext::new(http::uri::Scheme::HTTP),
        )
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_field_limits_answer_431() {
    let svc = service("echo");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_gets_the_whole_body_and_early_drop_does_not_trap() {
    let svc = service("echo");
    let size = 8 * 1024 * 1024;
    let response = svc
        .handle(
            get(
                "http://localhost/",
                &[("x-echo-generate", &size.to_string())],
            ),
            wasi_http_core::RequestContext::new(http::uri::Scheme::HTTP),
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
            wasi_http_core::RequestContext::new(http::uri::Scheme::HTTP),
        )
        .await;
    let mut body = response.into_body();
    let _ = body.frame().await;
    drop(body);
    let r = call_ok(&svc, get("http://localhost/", &[])).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_content_length_mismatch_aborts_the_body() {
    let svc = service("echo");
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
