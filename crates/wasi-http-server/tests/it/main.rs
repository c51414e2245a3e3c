//! The server above the handler seam, with native handlers (no guest): both
//! protocols, admission and the queue, body limits, metrics fed by the handler's
//! events, and the drain.

use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use http_body_util::{BodyExt, Full};
use test_support::send;
use wasi_http_core::{ErrorCode, Handler, HostBody, RequestContext};
use wasi_http_server::{Metrics, Server, ServerConfig};

mod hardening;

/// Echoes the request body after `delay`, reporting a guest start and end.
#[derive(Clone)]
struct Echo {
    delay: Duration,
}

impl Handler for Echo {
    async fn handle<B>(
        &self,
        request: http::Request<B>,
        cx: RequestContext,
    ) -> http::Response<HostBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<ErrorCode>,
    {
        let _in_flight = wasi_http_core::InFlight::new(cx.events.clone());
        tokio::time::sleep(self.delay).await;
        let version = format!("{:?}", request.version());
        match request.into_body().collect().await {
            Ok(body) => {
                let mut response = http::Response::new(wasi_http_core::body::full(body.to_bytes()));
                response
                    .headers_mut()
                    .insert("x-version", version.parse().expect("header"));
                response
            }
            Err(e) => wasi_http_core::error_response(e.into().status()),
        }
    }
}

struct Running {
    addr: std::net::SocketAddr,
    metrics: Metrics,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().map(|tx| tx.send(()));
        tokio::time::timeout(Duration::from_secs(10), &mut self.done)
            .await
            .expect("drained in time")
            .expect("server task");
    }
}

fn start<H: Handler>(handler: H, tune: impl FnOnce(&mut ServerConfig)) -> Running {
    let mut config = ServerConfig::default();
    config.workers = 1;
    config.access_log = false;
    tune(&mut config);
    let metrics = config.metrics.clone();
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), config).expect("bind");
    let addr = server.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        server
            .run(handler, async move {
                let _ = rx.await;
            })
            .await
            .expect("serve");
    });
    Running {
        addr,
        metrics,
        stop: Some(tx),
        done,
    }
}

fn post(addr: std::net::SocketAddr, body: &'static str) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("http://{addr}/"))
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("request")
}

fn metric(metrics: &Metrics, series: &str) -> Option<f64> {
    metrics
        .encode()
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_handler_over_http1_and_h2_with_metrics() {
    let server = start(
        Echo {
            delay: Duration::ZERO,
        },
        |_| {},
    );
    for h2 in [false, true] {
        let r = send(server.addr, post(server.addr, "ping"), h2)
            .await
            .expect("response");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "ping");
        let expected = if h2 { "HTTP/2.0" } else { "HTTP/1.1" };
        assert_eq!(r.header("x-version"), expected);
    }
    assert_eq!(
        metric(&server.metrics, "wasi_http_requests_total{class=\"2xx\"}"),
        Some(2.0)
    );
    assert_eq!(
        metric(&server.metrics, "wasi_http_requests_in_flight"),
        Some(0.0)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_slots_and_the_queue_is_503_with_retry_after() {
    let server = start(
        Echo {
            delay: Duration::from_millis(500),
        },
        |c| {
            c.max_concurrent_requests = 1;
            c.max_queued_requests = 0;
        },
    );
    let addr = server.addr;
    let first = tokio::spawn(async move { send(addr, post(addr, "a"), false).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = send(addr, post(addr, "b"), false).await.expect("response");
    assert_eq!(second.status, 503);
    assert_eq!(second.header("retry-after"), "1");
    let first = first.await.expect("task").expect("response");
    assert_eq!((first.status.as_u16(), first.text().as_str()), (200, "a"));
    assert_eq!(
        metric(
            &server.metrics,
            "wasi_http_requests_rejected_total{reason=\"queue_full\"}"
        ),
        Some(1.0)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_413_declared_or_streamed() {
    let server = start(
        Echo {
            delay: Duration::ZERO,
        },
        |c| c.max_request_body_bytes = Some(4),
    );
    let r = send(server.addr, post(server.addr, "12345"), false)
        .await
        .expect("response");
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), "close");
    // Streamed (no content-length): the handler's body read fails, 413 all the same.
    let frames = futures::stream::iter(
        ["12", "34", "56"]
            .map(|s| Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(s)))),
    );
    let request = http::Request::post(format!("http://{}/", server.addr))
        .body(http_body_util::StreamBody::new(frames))
        .expect("request");
    let r = send(server.addr, request, true).await.expect("response");
    assert_eq!(r.status, 413);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_requests_in_flight() {
    let server = start(
        Echo {
            delay: Duration::from_millis(400),
        },
        |_| {},
    );
    let addr = server.addr;
    let in_flight = tokio::spawn(async move { send(addr, post(addr, "late"), false).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let metrics = server.metrics.clone();
    assert_eq!(metric(&metrics, "wasi_http_requests_in_flight"), Some(1.0));
    server.stop().await;
    let r = in_flight
        .await
        .expect("task")
        .expect("answered before exit");
    assert_eq!(r.text(), "late");
}
