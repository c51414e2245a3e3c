//! How a request goes out: framing hyper would otherwise get wrong (GET, HEAD and
//! CONNECT bodies of unknown length), and what is kept to send a request again on a
//! fresh connection.

use std::time::Duration;

use http_body_util::BodyExt;
use wasi_http_core::{ErrorCode, HostBody};

/// Methods hyper's HTTP/1.1 client sends without a body when the body's length is
/// unknown (it assumes they have none).
fn bodiless_by_default(method: &http::Method) -> bool {
    method == http::Method::GET || method == http::Method::HEAD || method == http::Method::CONNECT
}

/// A body whose length only its end will tell (no `content-length`, no exact size).
fn unknown_length(request: &http::Request<HostBody>) -> bool {
    use http_body::Body as _;
    !request.body().is_end_stream()
        && request.body().size_hint().exact().is_none()
        && !request.headers().contains_key(http::header::CONTENT_LENGTH)
}

/// A GET, HEAD or CONNECT with a body of unknown length would go out without that
/// body (hyper assumes none), dropping what the guest wrote without a word. So
/// the host waits (up to `wait`) for the body's first frame: the end, and the
/// request has no body; data, and it goes out chunked (HTTP/1.1) with it.
pub(crate) async fn settle_framing(
    request: http::Request<HostBody>,
    wait: Duration,
) -> Result<http::Request<HostBody>, ErrorCode> {
    if !bodiless_by_default(request.method()) || !unknown_length(&request) {
        return Ok(request);
    }
    let (parts, mut body) = request.into_parts();
    let first = tokio::time::timeout(wait, body.frame())
        .await
        .map_err(|_| ErrorCode::ConnectionTimeout)?;
    let body = match first {
        None => wasi_http_core::body::empty(),
        Some(Err(code)) => return Err(code),
        Some(Ok(frame)) => {
            let first = futures::stream::once(async { Ok(frame) });
            let rest = http_body_util::BodyStream::new(body);
            use futures::StreamExt as _;
            http_body_util::StreamBody::new(first.chain(rest)).boxed_unsync()
        }
    };
    Ok(http::Request::from_parts(parts, body))
}

/// Whether a request settled by [`settle_framing`] still has a body of unknown
/// length, which HTTP/1.1 must then announce as chunked.
pub(crate) fn needs_explicit_chunking(request: &http::Request<HostBody>) -> bool {
    bodiless_by_default(request.method()) && unknown_length(request)
}

/// What is needed to send a bodiless idempotent request again.
pub(crate) struct Replay {
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
}

impl Replay {
    pub(crate) fn of(request: &http::Request<HostBody>) -> Option<Replay> {
        use http_body::Body as _;
        let idempotent = matches!(
            *request.method(),
            http::Method::GET
                | http::Method::HEAD
                | http::Method::PUT
                | http::Method::DELETE
                | http::Method::OPTIONS
                | http::Method::TRACE
        );
        let bodiless = request.body().size_hint().exact() == Some(0);
        (idempotent && bodiless).then(|| Replay {
            method: request.method().clone(),
            uri: request.uri().clone(),
            headers: request.headers().clone(),
        })
    }

    pub(crate) fn request(self) -> http::Request<HostBody> {
        let mut request = http::Request::new(wasi_http_core::body::empty());
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.headers_mut() = self.headers;
        request
    }
}
