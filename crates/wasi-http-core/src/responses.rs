//! The responses a host makes itself, when no guest answers.

use crate::body::HostBody;

/// A short plain-text error response (`503 Service Unavailable`, say); the detail stays
/// in the log.
pub fn error_response(status: http::StatusCode) -> http::Response<HostBody> {
    let text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let mut response = http::Response::new(crate::body::full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `503` with `retry-after: 1`: no capacity now, try again shortly.
pub fn unavailable() -> http::Response<HostBody> {
    let mut response = error_response(http::StatusCode::SERVICE_UNAVAILABLE);
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    );
    response
}

/// Marks a response `connection: close` (the rest of the request was not read, so
/// the connection cannot carry another).
pub fn close_after(mut response: http::Response<HostBody>) -> http::Response<HostBody> {
    response.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    response
}
