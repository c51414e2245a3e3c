//! A body a guest reads: frames are pulled from the network only when the guest
//! waits for data, so the host holds at most one frame per body.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::Body;

use super::{Direction, HostBody};
use crate::error::ErrorCode;
use crate::fields::Fields;
use crate::limits::Limits;

enum ReadState {
    Open,
    Ended(Option<HeaderMap>),
    Failed(ErrorCode),
}

/// How a body ended: its trailers (checked against the limits), or why it failed.
pub type ReadOutcome = Result<Option<Fields>, ErrorCode>;

/// Pulls frames from a body on demand.
pub struct BodyReader {
    body: HostBody,
    buf: Bytes,
    state: ReadState,
    between_bytes: Option<Duration>,
    /// Armed while waiting for a frame with a between-bytes limit.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    waiting: bool,
    read_chunk: usize,
    limits: Limits,
    direction: Direction,
}

/// What a read returned when it returned no bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadEnd {
    /// The body ended (trailers, if any, are in the outcome).
    Closed,
    /// The body failed.
    Failed(ErrorCode),
}

impl BodyReader {
    /// A reader of `body`; with `between_bytes`, a wait for a frame longer than that
    /// fails the body with `connection-read-timeout`.
    pub fn new(
        body: HostBody,
        between_bytes: Option<Duration>,
        limits: &Limits,
        direction: Direction,
    ) -> Self {
        BodyReader {
            body,
            buf: Bytes::new(),
            state: ReadState::Open,
            between_bytes,
            sleep: None,
            waiting: false,
            read_chunk: limits.body_read_chunk,
            limits: limits.clone(),
            direction,
        }
    }

    /// Ready once data is buffered or the body has ended or failed.
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while self.buf.is_empty() && matches!(self.state, ReadState::Open) {
            let frame = match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(frame) => frame,
                Poll::Pending => {
                    if let Some(limit) = self.between_bytes {
                        let deadline = tokio::time::Instant::now() + limit;
                        let sleep = match &mut self.sleep {
                            Some(sleep) => {
                                if !self.waiting {
                                    sleep.as_mut().reset(deadline);
                                }
                                sleep
                            }
                            None => self
                                .sleep
                                .insert(Box::pin(tokio::time::sleep_until(deadline))),
                        };
                        self.waiting = true;
                        if sleep.as_mut().poll(cx).is_ready() {
                            self.waiting = false;
                            self.state = ReadState::Failed(ErrorCode::ConnectionReadTimeout);
                            return Poll::Ready(());
                        }
                    }
                    return Poll::Pending;
                }
            };
            self.waiting = false;
            match frame {
                None => self.state = ReadState::Ended(None),
                Some(Err(code)) => self.state = ReadState::Failed(code),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.buf = data,
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            self.state = ReadState::Ended(Some(trailers));
                        }
                    }
                },
            }
        }
        Poll::Ready(())
    }

    /// Until data is buffered or the body has ended or failed.
    pub async fn fill(&mut self) {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// Up to `size` buffered bytes (at most `body_read_chunk`); empty while the body
    /// is open but nothing is buffered.
    pub fn read(&mut self, size: usize) -> Result<Bytes, ReadEnd> {
        if !self.buf.is_empty() {
            let n = size.min(self.buf.len()).min(self.read_chunk);
            return Ok(self.buf.split_to(n));
        }
        match &self.state {
            ReadState::Open => Ok(Bytes::new()),
            ReadState::Ended(_) => Err(ReadEnd::Closed),
            ReadState::Failed(code) => Err(ReadEnd::Failed(code.clone())),
        }
    }

    /// The buffered bytes, whole (for readers that copy them out themselves).
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Takes every buffered byte (a frame, or what is left of one).
    pub fn take_buffered(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Drops the first `n` buffered bytes.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        let _ = self.buf.split_to(n);
    }

    /// The outcome once the body has ended: trailers (checked against limits) or
    /// error. `None` while it has not ended. The trailers are handed out once.
    fn outcome(&mut self) -> Option<ReadOutcome> {
        match std::mem::replace(&mut self.state, ReadState::Open) {
            ReadState::Open => None,
            ReadState::Failed(code) => {
                self.state = ReadState::Failed(code.clone());
                Some(Err(code))
            }
            ReadState::Ended(trailers) => {
                self.state = ReadState::Ended(None);
                Some(match trailers {
                    None => Ok(None),
                    Some(map) => Fields::from_received(map, &self.limits)
                        .map(Some)
                        .map_err(|_| self.direction.trailer_size_error()),
                })
            }
        }
    }

    /// Skips the rest of the data; ready once the body has ended.
    pub fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            self.buf = Bytes::new();
            if self.poll_fill(cx).is_pending() {
                return Poll::Pending;
            }
            if self.buf.is_empty() {
                return Poll::Ready(());
            }
        }
    }

    /// Skips the rest of the data and waits for the end of the body.
    pub async fn drain(&mut self) {
        std::future::poll_fn(|cx| self.poll_drain(cx)).await
    }

    /// Like the outcome, but only once every byte was read (or skipped).
    pub fn finished_outcome(&mut self) -> Option<ReadOutcome> {
        if !self.buf.is_empty() {
            return None;
        }
        self.outcome()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out_between_bytes() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, ErrorCode>>(1);
        let body = http_body_util::StreamBody::new(tokio_stream(rx)).boxed_unsync();
        let mut reader = BodyReader::new(
            body,
            Some(Duration::from_secs(1)),
            &Limits::default(),
            Direction::Response,
        );
        tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"ab"))))
            .await
            .unwrap();
        reader.fill().await;
        assert_eq!(reader.read(10).unwrap(), "ab");
        reader.fill().await;
        assert_eq!(
            reader.read(10),
            Err(ReadEnd::Failed(ErrorCode::ConnectionReadTimeout))
        );
        drop(tx);
    }

    fn tokio_stream<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures::Stream<Item = T> {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }

    #[tokio::test]
    async fn trailers_come_once_after_the_data() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-t", "1".parse().unwrap());
        let frames = vec![
            Ok::<_, ErrorCode>(http_body::Frame::data(Bytes::from_static(b"abc"))),
            Ok(http_body::Frame::trailers(trailers)),
        ];
        let body = http_body_util::StreamBody::new(futures::stream::iter(frames)).boxed_unsync();
        let mut reader = BodyReader::new(body, None, &Limits::default(), Direction::Request);
        reader.fill().await;
        assert!(reader.finished_outcome().is_none(), "data unread");
        assert_eq!(reader.read(2).unwrap(), "ab");
        reader.drain().await;
        let outcome = reader.finished_outcome().unwrap().unwrap().unwrap();
        assert_eq!(outcome.get("x-t"), vec![b"1".to_vec()]);
        assert!(reader.finished_outcome().unwrap().unwrap().is_none());
    }
}
