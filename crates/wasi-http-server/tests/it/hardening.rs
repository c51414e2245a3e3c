//! What a client on the network must not be able to do: trickle an HTTP/2 header
//! block, hold a guest slot by never reading a response, send a request without
//! a valid authority, or exhaust the metrics listener.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame};
use test_support::{h2_frame, h2_headers, h2_preface, h2_read_until, h2_status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wasi_http_core::{ErrorCode, Handler, HostBody, RequestContext};

use super::{metric, start, Echo};

/// Answers every request with an endless body of 16 KiB chunks that holds the
/// request's slot; counts the bodies alive and the requests it saw.
#[derive(Clone, Default)]
struct Endless {
    live: Arc<AtomicUsize>,
    seen: Arc<AtomicUsize>,
}

struct EndlessBody {
    live: Arc<AtomicUsize>,
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Body for EndlessBody {
    type Data = Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, ErrorCode>>> {
        std::task::Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; 16 << 10])))))
    }
}

impl Drop for EndlessBody {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Handler for Endless {
    async fn handle<B>(
        &self,
        _request: http::Request<B>,
        cx: RequestContext,
    ) -> http::Response<HostBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<ErrorCode>,
    {
        self.seen.fetch_add(1, Ordering::SeqCst);
        self.live.fetch_add(1, Ordering::SeqCst);
        let body = EndlessBody {
            live: self.live.clone(),
            _slot: cx.slot,
        };
        http::Response::new(wasi_http_core::body::boxed(body))
    }
}

/// Waits up to `limit` for `count` to reach zero; how long it took.
async fn drained(count: &AtomicUsize, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if count.load(Ordering::SeqCst) == 0 {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_response_the_client_never_reads_is_aborted_and_frees_its_slot() {
    let handler = Endless::default();
    let server = start(handler.clone(), |c| {
        c.response_write_timeout = Some(Duration::from_millis(500));
        c.max_concurrent_requests = 1;
        c.max_queued_requests = 0;
    });
    let mut conn = TcpStream::connect(server.addr).await.expect("connect");
    conn.write_all(b"GET / HTTP/1.1\r\nhost: a.test\r\n\r\n")
        .await
        .expect("write");
    // Never read: the socket buffers fill, then the response stalls.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(handler.live.load(Ordering::SeqCst), 1);
    let took = drained(&handler.live, Duration::from_secs(5))
        .await
        .expect("the stalled response was aborted");
    assert!(took >= Duration::from_millis(200), "{took:?}");
    // The slot is free again.
    let r = tokio::time::timeout(Duration::from_secs(5), async {
        // An endless body cannot be collected: only the head matters here.
        let stream = TcpStream::connect(server.addr).await.expect("connect");
        let (mut sender, c) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("handshake");
        tokio::spawn(c);
        sender
            .send_request(test_support::get(&format!("http://{}/", server.addr), &[]))
            .await
            .expect("response")
            .status()
    })
    .await
    .expect("answered");
    assert_eq!(r, 200);
    assert_eq!(
        metric(
            &server.metrics,
            "wasi_http_client_timeouts_total{timeout=\"response_write\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_streams_kept_at_a_zero_window_are_reset_and_free_their_slots() {
    let handler = Endless::default();
    let server = start(handler.clone(), |c| {
        c.response_write_timeout = Some(Duration::from_millis(500));
    });
    let stream = TcpStream::connect(server.addr).await.expect("connect");
    let mut builder =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder.initial_stream_window_size(0).adaptive_window(false);
    let (mut sender, conn) = builder
        .handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut responses = Vec::new();
    for _ in 0..20 {
        let request = http::Request::get(format!("http://{}/", server.addr))
            .body(http_body_util::Empty::<Bytes>::new())
            .expect("request");
        responses.push(sender.send_request(request).await.expect("head"));
    }
    assert_eq!(handler.live.load(Ordering::SeqCst), 20);
    drained(&handler.live, Duration::from_secs(5))
        .await
        .expect("every stalled stream was reset");
    // Reset streams, not a closed connection: the connection still serves.
    let mut body = responses.pop().expect("a response").into_body();
    let frame = http_body_util::BodyExt::frame(&mut body).await;
    assert!(matches!(frame, Some(Err(_))), "the stream was reset");
    assert!(!sender.is_closed());
    assert_eq!(
        metric(
            &server.metrics,
            "wasi_http_client_timeouts_total{timeout=\"response_write\"}"
        ),
        Some(20.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_streams_per_connection_are_capped() {
    let handler = Endless::default();
    let server = start(handler.clone(), |c| c.max_streams_per_connection = 3);
    let mut conn = TcpStream::connect(server.addr).await.expect("connect");
    conn.write_all(&h2_preface()).await.expect("write");
    let (_, settings) = h2_read_until(&mut conn, 0, 0x4).await.expect("settings");
    // SETTINGS_MAX_CONCURRENT_STREAMS (0x3) = 3.
    assert!(
        settings.chunks(6).any(|s| s == [0, 3, 0, 0, 0, 3]),
        "{settings:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_header_block_trickled_is_cut_at_the_header_read_timeout() {
    let handler = Endless::default();
    let server = start(handler.clone(), |c| {
        c.header_read_timeout = Duration::from_millis(800);
    });
    let mut conn = TcpStream::connect(server.addr).await.expect("connect");
    conn.write_all(&h2_preface()).await.expect("write");
    let headers = h2_headers(
        1,
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "a.test"),
            ("x-padding", "0123456789012345678901234567890123456789"),
        ],
    );
    let started = Instant::now();
    let mut closed = None;
    for b in &headers {
        if conn.write_all(std::slice::from_ref(b)).await.is_err() {
            closed = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The server closes: reading sees the end (after its SETTINGS frames).
        let mut buf = [0u8; 512];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(1), conn.read(&mut buf)).await
        {
            closed = Some(started.elapsed());
            break;
        }
    }
    let closed = closed.expect("the connection was closed before the block ended");
    assert!(
        closed >= Duration::from_millis(700) && closed < Duration::from_secs(3),
        "{closed:?}"
    );
    assert_eq!(handler.seen.load(Ordering::SeqCst), 0);
    assert_eq!(
        metric(
            &server.metrics,
            "wasi_http_client_timeouts_total{timeout=\"header_read\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_pings_do_not_hold_an_idle_connection_open() {
    let server = start(
        Echo {
            delay: Duration::ZERO,
        },
        |c| c.idle_timeout = Duration::from_millis(600),
    );
    let mut conn = TcpStream::connect(server.addr).await.expect("connect");
    conn.write_all(&h2_preface()).await.expect("write");
    let started = Instant::now();
    loop {
        let ping = h2_frame(0x6, 0, 0, &[0; 8]);
        if conn.write_all(&ping).await.is_err() {
            break;
        }
        if h2_read_until(&mut conn, 0, 0x6).await.is_none() {
            break; // GOAWAY or closed
        }
        assert!(started.elapsed() < Duration::from_secs(5), "still open");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_authority_never_reach_the_handler() {
    let handler = Endless::default();
    let server = start(handler.clone(), |_| {});
    for (head, why) in [
        ("GET / HTTP/1.1\r\n\r\n", "no host"),
        (
            "GET / HTTP/1.1\r\nhost: a.test\r\nhost: b.test\r\n\r\n",
            "two hosts",
        ),
        ("GET / HTTP/1.1\r\nhost: a b\r\n\r\n", "space"),
        ("GET / HTTP/1.1\r\nhost: a/b\r\n\r\n", "slash"),
        ("GET / HTTP/1.1\r\nhost: u@a.example\r\n\r\n", "user info"),
        ("GET / HTTP/1.1\r\nhost: a.example:99999\r\n\r\n", "port"),
        ("GET / HTTP/1.1\r\nhost: [::1\r\n\r\n", "bracket"),
        ("GET / HTTP/1.1\r\nhost: \r\n\r\n", "empty"),
    ] {
        let mut conn = TcpStream::connect(server.addr).await.expect("connect");
        conn.write_all(head.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{why}: {answer}");
    }
    // HTTP/2: CONNECT without :authority, and a request with neither
    // :authority nor host.
    for fields in [
        &[(":method", "CONNECT")][..],
        &[(":method", "GET"), (":scheme", "http"), (":path", "/")][..],
    ] {
        let mut conn = TcpStream::connect(server.addr).await.expect("connect");
        conn.write_all(&h2_preface()).await.expect("write");
        conn.write_all(&h2_headers(1, fields)).await.expect("write");
        // A 400 from the server, or a stream reset by hyper: either way no handler.
        if let Some((_, block)) = h2_read_until(&mut conn, 1, 0x1).await {
            assert_eq!(h2_status(&block), Some(400), "{fields:?}");
        }
    }
    assert_eq!(handler.seen.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_listener_caps_its_connections() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let metrics = wasi_http_server::Metrics::default();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(wasi_http_server::serve_metrics(
        listener,
        metrics,
        async move {
            let _ = rx.await;
        },
    ));
    let mut held = Vec::new();
    for _ in 0..wasi_http_server::METRICS_MAX_CONNECTIONS {
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        conn.write_all(b"GET /metrics HTTP/1.1\r\n")
            .await
            .expect("write");
        held.push(conn);
    }
    // Let the server accept them all, then one more is closed at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut extra = TcpStream::connect(addr).await.expect("connect");
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), extra.read(&mut buf))
        .await
        .expect("closed at once");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    // A finished request on a held connection is still answered.
    let conn = &mut held[0];
    conn.write_all(b"host: a\r\n\r\n").await.expect("write");
    let n = conn.read(&mut buf).await.expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    drop(held);
    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("stopped")
        .expect("task");
}
