//! Guest misbehaviour: traps, missing or double responses, bad headers, runaway
//! loops and allocation. Each case must end in a response (or an aborted body) and
//! the service must keep serving.

use std::time::{Duration, Instant};

use crate::common::*;

async fn still_serving(svc: &wasi_http_host::AnyService) {
    let r = call_ok(svc, get("http://localhost/invalid-header", &[])).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_trap_before_and_never_set_give_500() {
    let svc = service("fault");
    for path in ["/trap-before", "/never-set"] {
        let r = call_ok(&svc, get(&format!("http://localhost{path}"), &[])).await;
        assert_eq!(r.status, 500, "{path}");
        assert!(r.text().starts_with("500"), "{path}: {}", r.text());
    }
    still_serving(&svc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_trap_after_set_and_set_twice_abort_the_body() {
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
async fn p2_body_longer_or_shorter_than_content_length_is_an_error() {
    let svc = service("fault");
    for path in ["/overflow", "/underflow"] {
        let r = call(&svc, get(&format!("http://localhost{path}"), &[])).await;
        assert!(r.is_err(), "{path} must abort the body, got {r:?}");
    }
    still_serving(&svc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_header_validation_and_limits_are_errors_not_traps() {
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
async fn p2_busy_loop_is_stopped_at_the_deadline() {
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
async fn p2_busy_loops_do_not_block_other_requests() {
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
async fn p2_unbounded_allocation_hits_the_memory_cap() {
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
async fn p2_resource_misuse_is_an_error_result_or_a_trap() {
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
async fn p2_send_informational_is_an_error_not_a_trap() {
    let svc = service("fault");
    let r = call_ok(&svc, get("http://localhost/informational", &[])).await;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (200, "informational: internal-error\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_guest_error_code_maps_to_a_status_without_detail() {
    let svc = service("fault");
    let r = call_ok(&svc, get("http://localhost/denied", &[])).await;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (403, "403 Forbidden\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_leaking_handles_hits_the_resource_limit() {
    let svc = service("fault");
    let r = call_ok(&svc, get("http://localhost/leak-fields", &[])).await;
    assert_eq!(r.status, 500);
    still_serving(&svc).await;
}

// ---------------------------------------------------------------------------------
// WASI 0.3

async fn p3_still_serving(svc: &wasi_http_host::AnyService) {
    let r = call_ok(svc, get("http://localhost/print", &[])).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "printed\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_trap_before_and_error_code() {
    let svc = service("p3-fault");
    let r = call_ok(&svc, get("http://localhost/trap-before", &[])).await;
    assert_eq!(r.status, 500);
    assert!(r.text().starts_with("500"), "{}", r.text());
    let r = call_ok(&svc, get("http://localhost/error-code", &[])).await;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (403, "403 Forbidden\n")
    );
    p3_still_serving(&svc).await;
}

/// A trap once the response is on its way cuts its body off; a trap in the same
/// callback that returned the response is a 500 (Wasmtime hands the response over
/// only when the callback returns).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_traps_after_the_response_abort_its_body() {
    let svc = service("p3-fault");
    let r = call(&svc, get("http://localhost/trap-mid-body", &[])).await;
    assert!(
        r.is_err(),
        "a body cut short by a trap must not look complete: {r:?}"
    );
    let r = call_ok(&svc, get("http://localhost/trap-after", &[])).await;
    assert_eq!(r.status, 500);
    p3_still_serving(&svc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_body_longer_or_shorter_than_content_length_is_an_error() {
    let svc = service("p3-fault");
    for path in ["/overflow", "/underflow"] {
        let r = call(&svc, get(&format!("http://localhost{path}"), &[])).await;
        assert!(r.is_err(), "{path} must abort the body, got {r:?}");
    }
    p3_still_serving(&svc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_field_limits_are_size_exceeded_and_1xx_is_not_final() {
    let svc = service("p3-fault");
    let r = call_ok(&svc, get("http://localhost/huge-headers", &[])).await;
    let text = r.text();
    let (n, error) = text.trim_end().split_once('\n').expect("two lines");
    assert_eq!(error, "size-exceeded", "{text}");
    // 64 KiB of field bytes at ~1030 bytes per entry.
    assert!((55..=64).contains(&n.parse::<usize>().unwrap()), "{text}");
    let r = call_ok(&svc, get("http://localhost/status-1xx", &[])).await;
    assert_eq!(r.status, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_busy_loop_is_stopped_at_the_deadline() {
    let mut config = config();
    config.request_timeout = Some(Duration::from_millis(500));
    let svc = service_with("p3-fault", config);
    let start = Instant::now();
    let r = call_ok(&svc, get("http://localhost/busy-loop", &[])).await;
    let elapsed = start.elapsed();
    assert_eq!(r.status, 504);
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    p3_still_serving(&svc).await;
}

/// A guest computing for one request cannot start another on its instance (its
/// tasks take turns): new requests go to another instance meanwhile.
#[tokio::test]
async fn p3_a_busy_instance_gets_no_new_requests() {
    let mut config = config();
    config.request_timeout = Some(Duration::from_secs(3));
    let svc = service_with("p3-fault", config);
    let spinner = {
        let svc = svc.clone();
        tokio::spawn(async move { call_ok(&svc, get("http://localhost/busy-loop", &[])).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    p3_still_serving(&svc).await;
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(spinner.await.unwrap().status, 504);
}

/// A trap fails the requests in flight on that instance; the next request gets a
/// new instance.
#[tokio::test]
async fn p3_a_trap_fails_the_requests_in_flight_on_its_instance() {
    let svc = service("p3-fault");
    let held = {
        let svc = svc.clone();
        tokio::spawn(async move {
            call(&svc, get("http://localhost/hold", &[("x-hold-ms", "3000")])).await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = call_ok(
        &svc,
        get("http://localhost/trap-later", &[("x-after-ms", "100")]),
    )
    .await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "ok\n"));
    let start = Instant::now();
    let held = held.await.unwrap().expect("a response");
    assert_eq!(held.status, 500, "{}", held.text());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "failed with the trap, not at its end"
    );
    p3_still_serving(&svc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_unbounded_allocation_hits_the_memory_cap() {
    let mut config = config();
    config.max_memory_bytes = Some(64 << 20);
    let svc = service_with("p3-fault", config);
    let r = call_ok(&svc, get("http://localhost/alloc", &[])).await;
    assert_eq!(r.status, 200);
    let n: usize = r.text().trim().parse().unwrap();
    assert!(n < 64, "{n} MiB");
    p3_still_serving(&svc).await;
}

/// Work after the response is allowed (and the instance serves on).
#[tokio::test]
async fn p3_work_after_the_response_is_allowed() {
    let svc = service("p3-fault");
    let start = Instant::now();
    let r = call_ok(
        &svc,
        get("http://localhost/after-response", &[("x-after-ms", "300")]),
    )
    .await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "done\n"));
    assert!(
        start.elapsed() < Duration::from_millis(250),
        "answered before the work"
    );
    p3_still_serving(&svc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_the_environment_is_what_the_service_gives() {
    let mut config = config();
    config.env = vec![("GREETING".into(), "hi there".into())];
    let svc = service_with("p3-fault", config);
    let r = call_ok(&svc, get("http://localhost/env", &[("x-env", "GREETING")])).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "hi there\n"));
    let r = call_ok(&svc, get("http://localhost/env", &[("x-env", "HOME")])).await;
    assert_eq!(r.status, 404, "nothing of the host's environment leaks");
}
