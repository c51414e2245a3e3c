//! Replaying a request that a reused instance dropped: while a guest has not yet
//! shown that its instances can be reused, the one reused instance on trial gets
//! its request through a [`Tape`], which records what the guest read of the body.
//! If that instance returns without a response, having sent no request out, the
//! failed attempt had no effect outside the instance (which goes), and the service
//! serves the same request again on a fresh instance: the client never sees the
//! failure. Version-independent: the 0.2 service uses it; it never sees bindings.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use wasi_http_core::{ErrorCode, HostBody};

/// At most this much of a request body is kept for a replay; a guest that read
/// more before failing is not replayed (its client gets the error response).
pub(crate) const MAX_RECORDED: usize = 256 * 1024;

/// A request kept for a replay: its head, and the tape its body runs through.
pub(crate) struct Replayable {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    headers: http::HeaderMap,
    tape: Arc<Mutex<TapeState>>,
}

/// What the guest has read of the body so far, and the body's unread rest.
struct TapeState {
    rest: Option<HostBody>,
    recorded: Vec<Recorded>,
    bytes: usize,
    /// Past [`MAX_RECORDED`], or the body failed: a replay could not repeat it.
    spoiled: bool,
}

enum Recorded {
    Data(Bytes),
    Trailers(http::HeaderMap),
}

/// The body the guest reads while its request may be replayed.
pub(crate) struct Tape(Arc<Mutex<TapeState>>);

impl Replayable {
    /// Keeps `request`'s head and returns the request to hand the guest, whose
    /// body records what is read of it.
    pub(crate) fn record(request: http::Request<HostBody>) -> (Self, http::Request<HostBody>) {
        let (parts, body) = request.into_parts();
        let tape = Arc::new(Mutex::new(TapeState {
            rest: Some(body),
            recorded: Vec::new(),
            bytes: 0,
            spoiled: false,
        }));
        let kept = Replayable {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: parts.headers.clone(),
            tape: tape.clone(),
        };
        let body = http_body_util::BodyExt::boxed_unsync(Tape(tape));
        (kept, http::Request::from_parts(parts, body))
    }

    /// The same request again, its body the recorded part followed by the unread
    /// rest; `None` if what was read could not be repeated. The first attempt's
    /// body ends (with an error) from here on.
    pub(crate) fn replay(self) -> Option<http::Request<HostBody>> {
        let (recorded, rest) = {
            let mut tape = lock(&self.tape);
            if tape.spoiled {
                return None;
            }
            (std::mem::take(&mut tape.recorded), tape.rest.take())
        };
        let body = Replay {
            recorded: recorded.into(),
            rest,
        };
        let mut request = http::Request::new(http_body_util::BodyExt::boxed_unsync(body));
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers;
        Some(request)
    }
}

/// The lock is only held across a non-blocking poll; a poisoned one (a body that
/// panicked) still holds consistent data for this purpose.
fn lock(tape: &Mutex<TapeState>) -> MutexGuard<'_, TapeState> {
    tape.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Body for Tape {
    type Data = Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ErrorCode>>> {
        let mut tape = lock(&self.0);
        let Some(rest) = tape.rest.as_mut() else {
            return Poll::Ready(Some(Err(ErrorCode::InternalError(Some(
                "the request body was moved to a replay of the request".into(),
            )))));
        };
        let polled = Pin::new(rest).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) if !tape.spoiled => {
                if let Some(data) = frame.data_ref() {
                    tape.bytes += data.len();
                    if tape.bytes > MAX_RECORDED {
                        tape.spoiled = true;
                        tape.recorded = Vec::new();
                    } else {
                        tape.recorded.push(Recorded::Data(data.clone()));
                    }
                } else if let Some(trailers) = frame.trailers_ref() {
                    tape.recorded.push(Recorded::Trailers(trailers.clone()));
                }
            }
            Poll::Ready(Some(Err(_))) => tape.spoiled = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        lock(&self.0).rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        lock(&self.0)
            .rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

/// A replayed body: the recorded frames, then the rest of the original.
struct Replay {
    recorded: VecDeque<Recorded>,
    rest: Option<HostBody>,
}

impl Body for Replay {
    type Data = Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ErrorCode>>> {
        if let Some(frame) = self.recorded.pop_front() {
            return Poll::Ready(Some(Ok(match frame {
                Recorded::Data(data) => Frame::data(data),
                Recorded::Trailers(trailers) => Frame::trailers(trailers),
            })));
        }
        match self.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recorded.is_empty() && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let recorded: u64 = self
            .recorded
            .iter()
            .map(|r| match r {
                Recorded::Data(d) => d.len() as u64,
                Recorded::Trailers(_) => 0,
            })
            .sum();
        let rest = self
            .rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint);
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower().saturating_add(recorded));
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(recorded));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn request(chunks: &[&'static str]) -> http::Request<HostBody> {
        let frames: Vec<Result<Frame<Bytes>, ErrorCode>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
            .collect();
        let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
        http::Request::post("http://example.com/p?q")
            .header("x-a", "1")
            .body(body.boxed_unsync())
            .unwrap()
    }

    #[tokio::test]
    async fn a_replay_repeats_what_was_read_then_the_rest() {
        let (kept, first) = Replayable::record(request(&["ab", "cd", "ef"]));
        let mut body = first.into_body();
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "ab");
        let again = kept.replay().expect("replayable");
        assert_eq!(again.method(), http::Method::POST);
        assert_eq!(again.uri(), "http://example.com/p?q");
        assert_eq!(again.headers()["x-a"], "1");
        let bytes = again.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "abcdef");
        // The first attempt's body is gone.
        assert!(body.frame().await.unwrap().is_err());
    }

    #[tokio::test]
    async fn a_body_read_past_the_limit_is_not_replayed() {
        let big: &'static str = Box::leak("x".repeat(MAX_RECORDED + 1).into_boxed_str());
        let (kept, first) = Replayable::record(request(&[big]));
        let _ = first.into_body().collect().await.unwrap();
        assert!(kept.replay().is_none());
    }
}
