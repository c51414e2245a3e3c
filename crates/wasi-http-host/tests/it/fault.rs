//! Guest misbehaviour: traps, missing or double responses, bad headers, runaway
//! loops and allocation. Each case must end in a response (or an aborted body) and
//! the service must keep serving.

use std::time::{Duration, Instant};

use crate::common::*;

async fn still_serving(svc: &wasi_http_host::p2::ProxyService) {
    let r = call_ok(svc, get("http://localhost/invalid-header", &[])).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_before_and_never_set_give_500() {
    let svc = service("fault");
    for path in ["/trap-before", "/never-set"] {
        let r = call_ok(&svc, get(&format!("http://localhost{path}"), &[])).await;
        assert_eq!(r.status, 500, "{path}");
        assert!(r.text().starts_with("500"), "{path}: {}", r.text());
    }
    still_serving(&svc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_after_set_and_set_twice_abort_the_body() {
    let svc = service("fault");
    let r = call(&svc, get("http://localhost/trap-after", &[])).await;
    assert!(
        r.is_err(),
        "a body cut short by a trap must not look complete: {r:?}"
    );
    // The first `set` delivered a complete (empty) response; the second traps the
    // guest without disturbing it.
    let r = call(&svc, get("http://localhost/set-twice", &[])).await;
    let r = r.expect("the first response is complete");
    assert_eq!((r.status.as_u16(), r.body.len()), (200, 0));
    still_serving(&svc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_longer_or_shorter_than_content_length_is_an_error() {
    let svc = service("fault");
    for path in ["/overflow", "/underflow"] {
        let r = call(&svc, get(&format!("http://localhost{path}"), &[])).await;
        assert!(r.is_err(), "{path} must abort the body, got {r:?}");
    }
    still_serving(&svc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_validation_and_limits_are_errors_not_traps() {
    let svc = service("fault");
    let r = call_ok(&svc, get("http://localhost/invalid-header", &[])).await;
    assert_eq!(
        r.text(),
        "bad-name: invalid-syntax\nbad-value: invalid-syntax\nforbidden: forbidden\ngood: ok\n"
    );
    let r = call_ok(&svc, get("http://localhost/immutable", &[])).await;
    assert_eq!(r.text(), "immutable-set: immutable\n");
    let r = call_ok(&svc, get("http://localhost/huge-headers", &[])).await;
    let text = r.text();
    assert!(text.starts_with("stopped after "), "{text}");
    assert!(text.ends_with(": forbidden\n"), "{text}");
    let n: usize = text["stopped after ".len()..text.find(':').unwrap()]
        .parse()
        .unwrap();
    // 64 KiB of field bytes at ~1030 bytes per entry.
    assert!((55..=64).contains(&n), "{n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_loop_is_stopped_at_the_deadline() {
    let mut config = config();
    config.request_timeout = Some(Duration::from_millis(500));
    let svc = service_with("fault", config);
    let start = Instant::now();
    let r = call_ok(&svc, get("http://localhost/busy-loop", &[])).await;
    let elapsed = start.elapsed();
    assert_eq!(r.status, 504);
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    still_serving(&svc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_loops_do_not_block_other_requests() {
    let mut config = config();
    config.request_timeout = Some(Duration::from_secs(3));
    let svc = service_with("fault", config);
    // More spinning guests than runtime threads: they must yield.
    let spinners: Vec<_> = (0..4)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move { call_ok(&svc, get("http://localhost/busy-loop", &[])).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    still_serving(&svc).await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    for s in spinners {
        assert_eq!(s.await.unwrap().status, 504);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_allocation_hits_the_memory_cap() {
    let mut config = config();
    config.max_memory_bytes = Some(64 << 20);
    let svc = service_with("fault", config);
    let r = call_ok(&svc, get("http://localhost/alloc", &[])).await;
    // The guest sees malloc fail and reports, or traps: either way bounded.
    match r.status.as_u16() {
        200 => {
            let text = r.text();
            let n: usize = text
                .trim_start_matches("allocated ")
                .trim_end_matches(" MiB\n")
                .parse()
                .unwrap();
            assert!(n < 64, "{text}");
        }
        500 => {}
        other => panic!("unexpected status {other}"),
    }
    still_serving(&svc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_misuse_is_an_error_result_or_a_trap() {
    let svc = service("fault");
    // A second consume and a second stream are `err` results, as the WIT says.
    let r = call_ok(&svc, post("http://localhost/double-consume", &[], "x")).await;
    assert_eq!(
        r.text(),
        "first-consume: ok\nsecond-consume: err\nsecond-stream: err\n"
    );
    // Finishing a body whose stream is alive traps the guest; the body is aborted.
    let r = call(&svc, get("http://localhost/finish-live-stream", &[])).await;
    assert!(r.is_err(), "{r:?}");
    still_serving(&svc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_informational_is_an_error_not_a_trap() {
    let svc = service("fault");
    let r = call_ok(&svc, get("http://localhost/informational", &[])).await;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (200, "informational: internal-error\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_error_code_maps_to_a_status_without_detail() {
    let svc = service("fault");
    let r = call_ok(&svc, get("http://localhost/denied", &[])).await;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (403, "403 Forbidden\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaking_handles_hits_the_resource_limit() {
    let svc = service("fault");
    let r = call_ok(&svc, get("http://localhost/leak-fields", &[])).await;
    assert_eq!(r.status, 500);
    still_serving(&svc).await;
}
