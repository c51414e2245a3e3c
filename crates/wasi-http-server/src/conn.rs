//! What a connection's driver watches: its requests in progress, when it last
//! moved, how long a request head has been arriving, and how long a write has
//! waited for the client.
//!
//! hyper bounds the time to read an HTTP/1.1 request head, but not an HTTP/2
//! one: a client can send one HEADERS frame a byte at a time, and every byte
//! would look like traffic. So reads are not traffic here, and [`Tracked`]
//! follows the HTTP/2 frame headers going by (nine bytes each, no parsing of
//! their payload) to time each header block from its first byte to its
//! `END_HEADERS`.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::watchdog::Progress;

/// No clock running.
const NONE: u64 = u64::MAX;

/// The state of one connection, shared by its IO wrapper, its requests and its
/// driver.
pub(crate) struct Activity {
    epoch: Instant,
    /// Last request started or ended (ms since `epoch`): protocol traffic such as
    /// pings and their acks does not count.
    last_ms: AtomicU64,
    busy: AtomicUsize,
    /// Since when a request head (or the connection's first bytes) has been
    /// arriving, or `NONE`.
    head_since_ms: AtomicU64,
    /// Since when a write has waited for the client to read, or `NONE`.
    write_blocked_ms: AtomicU64,
    /// Whether the connection may be HTTP/2 (not yet known to be HTTP/1.1, whose
    /// heads hyper times itself).
    maybe_h2: AtomicBool,
    /// Its HTTP/1.1 responses' progress, for the response write timeout.
    pub(crate) progress: Arc<Progress>,
}

/// Why a connection's driver closes it at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overdue {
    /// A request head (or the first bytes) took longer than the header timeout.
    HeaderRead,
    /// A write waited for the client longer than the response write timeout.
    Write,
}

impl Activity {
    /// A new connection: its first bytes are due within the header timeout.
    pub(crate) fn new() -> Self {
        Activity {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            head_since_ms: AtomicU64::new(0),
            write_blocked_ms: AtomicU64::new(NONE),
            maybe_h2: AtomicBool::new(true),
            progress: Arc::new(Progress::default()),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// How long the connection has been idle (zero while a request is in progress).
    pub(crate) fn idle_for(&self) -> Duration {
        if self.busy.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }

    /// When the driver should look again: at the idle deadline (if `idle`), or
    /// when a running clock runs out; and while the protocol may be HTTP/2, at
    /// least every `header` (a header clock that starts after this check is then
    /// seen in time: the following check sleeps until its exact deadline).
    pub(crate) fn next_check(
        &self,
        idle: Option<Duration>,
        header: Duration,
        write: Option<Duration>,
    ) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        let mut left = Duration::from_secs(3600);
        if let Some(idle) = idle {
            left = left.min(idle.saturating_sub(self.idle_for()));
        }
        if self.maybe_h2.load(Ordering::Relaxed) {
            left = left.min(header);
        }
        let elapsed = self.epoch.elapsed();
        let until = |since: &AtomicU64, limit: Duration| match since.load(Ordering::Relaxed) {
            NONE => None,
            ms => Some((Duration::from_millis(ms) + limit).saturating_sub(elapsed)),
        };
        if let Some(d) = until(&self.head_since_ms, header) {
            left = left.min(d);
        }
        if let Some(d) = write.and_then(|w| until(&self.write_blocked_ms, w)) {
            left = left.min(d);
        }
        now + left.max(Duration::from_millis(10))
    }

    /// A clock that has run out, if one has.
    pub(crate) fn overdue(&self, header: Duration, write: Option<Duration>) -> Option<Overdue> {
        let elapsed = self.epoch.elapsed();
        let past = |since: &AtomicU64, limit: Duration| match since.load(Ordering::Relaxed) {
            NONE => false,
            ms => elapsed >= Duration::from_millis(ms) + limit,
        };
        if past(&self.head_since_ms, header) {
            return Some(Overdue::HeaderRead);
        }
        if write.is_some_and(|w| past(&self.write_blocked_ms, w)) {
            return Some(Overdue::Write);
        }
        None
    }

    fn head_started(&self) {
        if self.head_since_ms.load(Ordering::Relaxed) == NONE {
            self.head_since_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    fn head_done(&self) {
        self.head_since_ms.store(NONE, Ordering::Relaxed);
    }

    fn is_http1(&self) {
        self.maybe_h2.store(false, Ordering::Relaxed);
        self.head_done();
    }
}

/// A request in progress on a connection, until its response body is done.
pub(crate) struct Busy(Arc<Activity>);

impl Busy {
    pub(crate) fn new(activity: &Arc<Activity>) -> Self {
        activity.busy.fetch_add(1, Ordering::Relaxed);
        activity.touch();
        Busy(activity.clone())
    }

    /// Where this request's response reports its progress: its HTTP/2 stream's,
    /// or else its connection's.
    pub(crate) fn progress(&self) -> Arc<Progress> {
        Progress::current().unwrap_or_else(|| self.0.progress.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADERS: u8 = 0x1;
const FRAME_CONTINUATION: u8 = 0x9;
const FLAG_END_HEADERS: u8 = 0x4;

/// Where a connection's incoming bytes are, as far as header timing cares.
enum Proto {
    /// Before the first bytes tell HTTP/2's preface from an HTTP/1.1 request:
    /// this many bytes of the preface seen.
    Unknown(u8),
    /// HTTP/1.1: hyper times request heads.
    Http1,
    /// HTTP/2 frames: `have` bytes of a frame header in `head`, or `left` bytes
    /// of a payload; `ends_block` when that payload ends a header block;
    /// `in_block` from a HEADERS frame to the end of its block.
    H2 {
        head: [u8; 9],
        have: u8,
        left: u32,
        ends_block: bool,
        in_block: bool,
    },
}

impl Proto {
    /// Follows `bytes` and starts or stops the connection's header clock.
    fn feed(&mut self, mut bytes: &[u8], activity: &Activity) {
        while !bytes.is_empty() {
            match self {
                Proto::Http1 => return,
                Proto::Unknown(seen) => {
                    let at = usize::from(*seen);
                    let n = bytes.len().min(PREFACE.len() - at);
                    if bytes[..n] != PREFACE[at..at + n] {
                        *self = Proto::Http1;
                        activity.is_http1();
                        return;
                    }
                    bytes = &bytes[n..];
                    if at + n == PREFACE.len() {
                        // The preface is in; the client may now stay quiet.
                        activity.head_done();
                        *self = Proto::H2 {
                            head: [0; 9],
                            have: 0,
                            left: 0,
                            ends_block: false,
                            in_block: false,
                        };
                    } else {
                        // At most 24: fits.
                        *seen = (at + n) as u8;
                    }
                }
                Proto::H2 {
                    head,
                    have,
                    left,
                    ends_block,
                    in_block,
                } => {
                    if *left > 0 {
                        let n = bytes.len().min(*left as usize);
                        bytes = &bytes[n..];
                        // n <= left, a u32.
                        *left -= n as u32;
                        if *left == 0 && *ends_block {
                            *in_block = false;
                            activity.head_done();
                        }
                        continue;
                    }
                    // A frame header is due in full within the timeout too (the
                    // clock starts at its first byte, before its type is known).
                    let at = usize::from(*have);
                    if at == 0 {
                        activity.head_started();
                    }
                    let n = bytes.len().min(9 - at);
                    head[at..at + n].copy_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if at + n < 9 {
                        *have = (at + n) as u8;
                        continue;
                    }
                    *have = 0;
                    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]);
                    let header_block = head[3] == FRAME_HEADERS || head[3] == FRAME_CONTINUATION;
                    *ends_block = header_block && head[4] & FLAG_END_HEADERS != 0;
                    *left = len;
                    if header_block {
                        *in_block = true;
                    }
                    if !*in_block || (len == 0 && *ends_block) {
                        *in_block = false;
                        activity.head_done();
                    }
                }
            }
        }
    }
}

/// A connection's IO stream, reporting to its [`Activity`].
pub(crate) struct Tracked<I> {
    io: I,
    activity: Arc<Activity>,
    proto: Proto,
}

impl<I> Tracked<I> {
    pub(crate) fn new(io: I, activity: Arc<Activity>) -> Self {
        Tracked {
            io,
            activity,
            proto: Proto::Unknown(0),
        }
    }

    /// Records that a write waits for the client, or no longer does.
    fn wrote(&self, poll: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
        let blocked = &self.activity.write_blocked_ms;
        match &poll {
            Poll::Pending => {
                if blocked.load(Ordering::Relaxed) == NONE {
                    blocked.store(self.activity.now_ms(), Ordering::Relaxed);
                }
            }
            Poll::Ready(_) => {
                if blocked.load(Ordering::Relaxed) != NONE {
                    blocked.store(NONE, Ordering::Relaxed);
                }
            }
        }
        poll
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let poll = Pin::new(&mut this.io).poll_read(cx, buf);
        if !matches!(this.proto, Proto::Http1) {
            this.proto.feed(&buf.filled()[before..], &this.activity);
        }
        poll
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.wrote(poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ty: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = len.to_be_bytes()[1..].to_vec();
        f.extend([ty, flags, 0, 0, 0, 1]);
        f.extend_from_slice(payload);
        f
    }

    fn running(a: &Activity) -> bool {
        a.head_since_ms.load(Ordering::Relaxed) != NONE
    }

    #[test]
    fn header_clock_follows_http2_header_blocks_byte_by_byte() {
        let a = Activity::new();
        let mut p = Proto::Unknown(0);
        assert!(running(&a), "a new connection's first bytes are due");
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(0x4, 0, &[0; 6])); // SETTINGS
        let settings_end = bytes.len();
        bytes.extend(frame(FRAME_HEADERS, 0, b"abc")); // no END_HEADERS
        let headers_end = bytes.len();
        bytes.extend(frame(FRAME_CONTINUATION, FLAG_END_HEADERS, b"de"));
        let block_end = bytes.len();
        bytes.extend(frame(0x0, 0x1, b"body")); // DATA
                                                // Running: before the preface ends, during every frame header, and from
                                                // the HEADERS frame's first byte to its block's end.
        let preface = PREFACE.len();
        let in_frame_header = |at: usize, start: usize| at > start && at < start + 9;
        for (i, b) in bytes.iter().enumerate() {
            p.feed(std::slice::from_ref(b), &a);
            let at = i + 1;
            let expect = at < preface
                || in_frame_header(at, preface)
                || (at > settings_end && at < block_end)
                || in_frame_header(at, block_end);
            assert_eq!(
                running(&a),
                expect,
                "after byte {at} (headers end {headers_end})"
            );
        }
        // The same bytes in one read.
        let a = Activity::new();
        let mut p = Proto::Unknown(0);
        p.feed(&bytes, &a);
        assert!(!running(&a));
        assert!(a.maybe_h2.load(Ordering::Relaxed));
    }

    #[test]
    fn http1_stops_the_clock_at_its_first_byte() {
        for start in [&b"GET / HTTP/1.1\r\n"[..], b"POST /", b"PRI * HTTP/1.1"] {
            let a = Activity::new();
            let mut p = Proto::Unknown(0);
            p.feed(start, &a);
            assert!(matches!(p, Proto::Http1));
            assert!(!running(&a));
            assert!(!a.maybe_h2.load(Ordering::Relaxed));
        }
    }
}
