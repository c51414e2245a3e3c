//! 0.2 instance reuse with guests that break when reused: one reused instance
//! is on trial until reuse is proven, and a request its trial dropped (no
//! response, nothing sent out) is served again on a fresh instance.

use std::convert::Infallible;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::StreamBody;

use crate::common::*;

fn reusing_fault() -> wasi_http_host::AnyService {
    let mut config = config();
    config.instance_reuse = Some(wasi_http_host::InstanceReuse::new(100));
    service_with("fault", config)
}

/// An instance goes back to the idle list when its call ends, which can be just
/// after its client has the whole response: the next request waits for that.
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
}

/// A body arriving in three chunks.
fn chunked(
    path: &str,
    chunks: [&'static str; 3],
) -> http::Request<impl http_body::Body<Data = Bytes, Error = Infallible> + Send + 'static> {
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = chunks
        .iter()
        .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
        .collect();
    http::Request::post(format!("http://localhost{path}"))
        .body(StreamBody::new(futures::stream::iter(frames)))
        .expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_a_reused_instance_that_drops_its_request_is_replayed_on_a_fresh_one() {
    for path in ["/fresh-only-silent", "/fresh-only-silent-read"] {
        let svc = reusing_fault();
        let r = call_ok(&svc, post(&format!("http://localhost{path}"), &[], "one")).await;
        assert_eq!(
            (r.status.as_u16(), r.text()),
            (200, "fresh: one".into()),
            "{path}"
        );
        settle().await;
        // The reused instance returns without a response (having read the body,
        // or not): the client gets the fresh instance's answer, the whole body.
        let r = call(&svc, chunked(path, ["tw", "o-", "three"]))
            .await
            .expect("body");
        assert_eq!(
            (r.status.as_u16(), r.text()),
            (200, "fresh: two-three".into()),
            "{path}"
        );
        // From now on every request gets a fresh instance.
        let r = call_ok(&svc, post(&format!("http://localhost{path}"), &[], "four")).await;
        assert_eq!(
            (r.status.as_u16(), r.text()),
            (200, "fresh: four".into()),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_requests_arriving_together_meet_at_most_one_instance_on_trial() {
    let svc = reusing_fault();
    // Warm: instances that answered once are idle now.
    let warm = (0..8).map(|_| call_ok(&svc, get("http://localhost/fresh-only-silent", &[])));
    for r in futures::future::join_all(warm).await {
        assert_eq!(r.status, 200);
    }
    let calls = (0..32).map(|i| {
        let body = format!("r{i}");
        let svc = &svc;
        async move {
            let r = call_ok(
                svc,
                post("http://localhost/fresh-only-silent", &[], body.clone()),
            )
            .await;
            (r.status.as_u16(), r.text(), body)
        }
    });
    for (status, text, body) in futures::future::join_all(calls).await {
        assert_eq!((status, text), (200, format!("fresh: {body}")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_a_dropped_request_that_sent_one_out_is_not_replayed() {
    let svc = reusing_fault();
    let r = call_ok(&svc, get("http://localhost/fresh-only-silent-send", &[])).await;
    assert_eq!(r.status, 200);
    settle().await;
    // Sending again could repeat what the guest did: the client gets the 500.
    let r = call_ok(&svc, get("http://localhost/fresh-only-silent-send", &[])).await;
    assert_eq!(r.status, 500);
    let r = call_ok(&svc, get("http://localhost/fresh-only-silent-send", &[])).await;
    assert_eq!(r.status, 200, "fresh instances from now on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_a_dropped_request_read_past_the_recording_limit_is_not_replayed() {
    let svc = reusing_fault();
    let big = "x".repeat(300 * 1024);
    let r = call_ok(
        &svc,
        post("http://localhost/fresh-only-silent-read", &[], big.clone()),
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.body.len()),
        (200, "fresh: ".len() + big.len())
    );
    settle().await;
    let r = call_ok(
        &svc,
        post("http://localhost/fresh-only-silent-read", &[], big),
    )
    .await;
    assert_eq!(r.status, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_a_reusable_guest_keeps_its_instances_after_the_trial() {
    let mut config = config();
    config.instance_reuse = Some(wasi_http_host::InstanceReuse::new(1000));
    let svc = service_with("echo", config);
    let events = std::sync::Arc::new(crate::proxy::Instantiations::default());
    for i in 0..20 {
        let mut cx = RequestContext::new(http::uri::Scheme::HTTP);
        cx.events = Some(events.clone());
        let body = format!("body {i}");
        let response =
            Handler::handle(&svc, post("http://localhost/", &[], body.clone()), cx).await;
        let r = test_support::collect(response).await.expect("body");
        assert_eq!((r.status.as_u16(), r.text()), (200, body));
        settle().await;
    }
    let n = events.0.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(n, 1, "one instance served all sequential requests");
}
