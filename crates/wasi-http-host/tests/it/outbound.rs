//! `outgoing-handler` through the client guest: methods, bodies, timeouts, errors.

use std::time::Duration;

use test_support::{Origin, RawScript, RawServer, TestTls};

use crate::common::*;

async fn fetch(guest: &str, url: &str, extra: &[(&str, &str)]) -> test_support::Collected {
    let svc = service(guest);
    let mut headers = vec![("x-url", url)];
    headers.extend_from_slice(extra);
    call_ok(&svc, get("http://localhost/", &headers)).await
}

both!(
    get_put_unknown_method_and_missing_path,
    "client",
    async |guest: &str| {
        let origin = Origin::echo(None).await;
        let r = fetch(guest, &origin.url("/a/b?c=d"), &[("x-fwd-x-custom", "1")]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-status"), "200");
        assert_eq!(r.header("x-resp-x-origin-method"), "GET");
        assert_eq!(r.header("x-resp-x-origin-path"), "/a/b?c=d");
        assert_eq!(r.header("x-resp-x-origin-h-x-custom"), "1");
        assert_eq!(r.header("x-resp-x-origin-h-host"), origin.addr.to_string());

        let r = fetch(guest, &origin.url("/p"), &[("x-method", "PUT")]).await;
        assert_eq!(r.header("x-resp-x-origin-method"), "PUT");
        let r = fetch(guest, &origin.url("/p"), &[("x-method", "FROB")]).await;
        assert_eq!(r.header("x-resp-x-origin-method"), "FROB");
        let r = fetch(guest, &origin.url("/ignored"), &[("x-no-path", "1")]).await;
        assert_eq!(r.header("x-resp-x-origin-path"), "/");
    }
);

both!(
    post_bodies_stream_to_the_origin,
    "client",
    async |guest: &str| {
        let origin = Origin::echo(None).await;
        let svc = service(guest);
        let r = call_ok(
            &svc,
            post(
                "http://localhost/",
                &[
                    ("x-url", &origin.url("/")),
                    ("x-method", "POST"),
                    ("x-forward-body", "1"),
                ],
                "abc",
            ),
        )
        .await;
        assert_eq!(r.text(), "abc");
        let big: Vec<u8> = (0..10 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
        let r = call_ok(
            &svc,
            post(
                "http://localhost/",
                &[
                    ("x-url", &origin.url("/")),
                    ("x-method", "POST"),
                    ("x-forward-body", "1"),
                ],
                big.clone(),
            ),
        )
        .await;
        assert_eq!(r.header("x-status"), "200");
        assert_eq!(r.body.len(), big.len());
        assert!(r.body == big, "10 MiB body corrupted in transit");
    }
);

both!(
    request_errors_have_precise_codes,
    "client",
    async |guest: &str| {
        // Forbidden header from the guest.
        let r = fetch(
            guest,
            "http://127.0.0.1:1/",
            &[("x-fwd-connection", "close")],
        )
        .await;
        assert_eq!(
            (r.status.as_u16(), r.header("x-error")),
            (400, "header-forbidden")
        );
        // Unsupported scheme.
        let r = fetch(guest, "ftp://127.0.0.1:1/", &[]).await;
        assert_eq!(r.header("x-error"), "HTTP-protocol-error");
        // Invalid port.
        let r = fetch(guest, "http://127.0.0.1:99999/", &[]).await;
        assert_eq!(r.header("x-error"), "set-authority-failed");
        // Unresolvable name (RFC 6761 `.invalid`).
        let r = fetch(guest, "http://no-such-host.invalid/", &[]).await;
        assert_eq!(r.header("x-error"), "DNS-error");
        // Connection refused: a port bound by nobody listening.
        let refusing = test_support::RefusingPort::new();
        let r = fetch(guest, &format!("http://{}/", refusing.addr), &[]).await;
        assert_eq!(r.header("x-error"), "connection-refused");
    }
);

both!(connect_timeout, "client", async |guest: &str| {
    // A listener whose accept queue is full drops further SYNs: connect hangs.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let r = fetch(
        guest,
        &format!("http://{addr}/"),
        &[("x-connect-timeout-ms", "300")],
    )
    .await;
    assert_eq!(r.header("x-error"), "connection-timeout");
    drop(listener);
});

both!(
    first_byte_and_between_bytes_timeouts,
    "client",
    async |guest: &str| {
        let silent = RawServer::start(RawScript {
            steps: vec![],
            hold_open: true,
        })
        .await;
        let r = fetch(
            guest,
            &silent.url("/"),
            &[("x-first-byte-timeout-ms", "300")],
        )
        .await;
        assert_eq!(r.header("x-error"), "HTTP-response-timeout");

        let stalls = RawServer::start(RawScript {
            steps: vec![(
                Duration::ZERO,
                b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n12".to_vec(),
            )],
            hold_open: true,
        })
        .await;
        let r = fetch(
            guest,
            &stalls.url("/"),
            &[("x-between-bytes-timeout-ms", "300"), ("x-mode", "buffer")],
        )
        .await;
        assert_eq!(r.header("x-status"), "200");
        assert_eq!(r.header("x-body-error"), "connection-read-timeout");
    }
);

both!(
    content_length_mismatch_both_directions,
    "client",
    async |guest: &str| {
        let origin = Origin::echo(None).await;
        let svc = service(guest);
        for declared in ["10", "3"] {
            let r = call_ok(
                &svc,
                post(
                    "http://localhost/",
                    &[
                        ("x-url", &origin.url("/")),
                        ("x-method", "POST"),
                        ("x-forward-body", "1"),
                        ("x-fwd-content-length", declared),
                        ("x-transmission", "1"),
                    ],
                    "12345",
                ),
            )
            .await;
            // 0.2 reports the failed body write; 0.3 its request's transmission future
            // (or the send, if the origin gave up first).
            let reported = if is_p3(guest) {
                [r.header("x-transmission"), r.header("x-error")]
            } else {
                [r.header("x-body-send-error"), ""]
            };
            assert!(
                reported.contains(&"HTTP-request-body-size"),
                "declared {declared}: {reported:?} ({})",
                r.text()
            );
        }
        // The origin declares 10 and sends 5 before closing.
        let short = RawServer::respond(
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\n12345",
        )
        .await;
        let r = fetch(guest, &short.url("/"), &[("x-mode", "buffer")]).await;
        assert_eq!(r.header("x-body-error"), "HTTP-response-incomplete");
    }
);

both!(
    duplicate_content_length_from_the_origin,
    "client",
    async |guest: &str| {
        let same = RawServer::respond(
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
    )
    .await;
        let r = fetch(guest, &same.url("/"), &[("x-mode", "buffer")]).await;
        assert_eq!(r.header("x-status"), "200");
        assert_eq!(r.header_all("x-resp-content-length"), vec!["5"]);
        assert_eq!(r.text(), "hello");

        let conflicting = RawServer::respond(
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\nconnection: close\r\n\r\nhello!",
    )
    .await;
        let r = fetch(guest, &conflicting.url("/"), &[]).await;
        assert_eq!(r.header("x-error"), "HTTP-protocol-error");
    }
);

both!(
    origin_trailers_reach_the_guest,
    "client",
    async |guest: &str| {
        let chunked = RawServer::respond(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\nconnection: close\r\n\r\n5\r\nhello\r\n0\r\nx-sum: 42\r\n\r\n",
    )
    .await;
        let r = fetch(guest, &chunked.url("/"), &[("x-mode", "buffer")]).await;
        assert_eq!(r.text(), "hello");
        assert_eq!(r.header("x-trailer-x-sum"), "42");
        // Streaming mode forwards them as the response's trailers.
        let r = fetch(guest, &chunked.url("/"), &[]).await;
        assert_eq!(r.text(), "hello");
        let trailers = r.trailers.expect("trailers");
        assert_eq!(trailers.get("x-sum").unwrap(), "42");
    }
);

both!(
    concurrent_requests_from_one_guest,
    "client",
    async |guest: &str| {
        let origin = Origin::start(None, |_req| async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            http::Response::new(test_support::full("ok"))
        })
        .await;
        let start = std::time::Instant::now();
        let r = fetch(guest, &origin.url("/"), &[("x-concurrent", "8")]).await;
        let expected: String = (0..8).map(|i| format!("{i} 200\n")).collect();
        assert_eq!(r.text(), expected);
        // Sequential would take 1.6 s.
        assert!(
            start.elapsed() < Duration::from_millis(1200),
            "{:?}",
            start.elapsed()
        );
    }
);

both!(
    early_body_drop_is_not_a_trap,
    "client",
    async |guest: &str| {
        let origin = Origin::start(None, |_req| async {
            http::Response::new(test_support::full(vec![7u8; 4 * 1024 * 1024]))
        })
        .await;
        let r = fetch(guest, &origin.url("/"), &[("x-drop-body-early", "1")]).await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "dropped\n"));
    }
);

both!(
    tls_with_a_trusted_and_an_untrusted_ca,
    "client",
    async |guest: &str| {
        let tls = TestTls::new();
        let origin = Origin::echo(Some(tls.server.clone())).await;
        let svc = service_trusting(guest, &tls);
        for host in ["localhost", "127.0.0.1"] {
            let url = format!("https://{host}:{}/secure", origin.addr.port());
            let r = call_ok(&svc, get("http://localhost/", &[("x-url", &url)])).await;
            assert_eq!(r.header("x-status"), "200", "{host}: {}", r.text());
            assert_eq!(r.header("x-resp-x-origin-path"), "/secure");
        }
        // The default client trusts only the webpki roots.
        let r = fetch(
            guest,
            &format!("https://localhost:{}/", origin.addr.port()),
            &[],
        )
        .await;
        assert_eq!(r.header("x-error"), "TLS-certificate-error");
    }
);

both!(
    request_trailers_reach_the_origin,
    "client",
    async |guest: &str| {
        use http_body::Frame;
        let origin = Origin::echo(None).await;
        let svc = service(guest);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-req-sum", "99".parse().unwrap());
        let frames = futures::stream::iter(vec![
            Ok::<_, std::convert::Infallible>(Frame::data(bytes::Bytes::from("body"))),
            Ok(Frame::trailers(trailers)),
        ]);
        let req = http::Request::post("http://localhost/")
            .header("x-url", origin.url("/t"))
            .header("x-method", "POST")
            .header("x-forward-body", "1")
            // HTTP/1.1 sends only announced trailer fields (RFC 9110 §6.6.2).
            .header("x-fwd-trailer", "x-req-sum")
            .body(http_body_util::StreamBody::new(frames))
            .unwrap();
        let response = svc
            .handle(
                req,
                wasi_http_core::RequestContext::new(http::uri::Scheme::HTTP),
            )
            .await;
        let r = test_support::collect(response).await.expect("body");
        assert_eq!(r.header("x-status"), "200", "{}", r.text());
        assert_eq!(r.text(), "body");
        assert_eq!(r.header("x-resp-x-origin-trailer-x-req-sum"), "99");
    }
);

// ---------------------------------------------------------------------------------
// WASI 0.3 only

/// Options attached to a request cannot be changed through it any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_request_options_are_immutable_once_attached() {
    let origin = Origin::echo(None).await;
    let r = fetch(
        "p3-client",
        &origin.url("/"),
        &[("x-options-check", "1"), ("x-connect-timeout-ms", "5000")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-options-set"), "immutable");
}

/// A request's transmission future says whether its body went out whole: with a
/// body, without one, and when the body breaks its content-length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_transmission_futures_resolve() {
    let origin = Origin::echo(None).await;
    let svc = service("p3-client");
    for method in ["GET", "POST"] {
        let r = call_ok(
            &svc,
            post(
                "http://localhost/",
                &[
                    ("x-url", &origin.url("/")),
                    ("x-method", method),
                    ("x-forward-body", "1"),
                    ("x-transmission", "1"),
                ],
                if method == "GET" { "" } else { "payload" },
            ),
        )
        .await;
        assert_eq!(r.status, 200, "{method}: {}", r.text());
        assert_eq!(r.header("x-transmission"), "ok", "{method}");
    }
    let r = fetch(
        "p3-client",
        &origin.url("/"),
        &[("x-method", "GET"), ("x-transmission", "1")],
    )
    .await;
    assert_eq!(r.header("x-transmission"), "ok", "a bodiless GET");
}
