//! Message bodies: the body type the host hands to hyper and receives from it, the
//! bounded queue a guest writes into ([`channel`]), the lazy reader a guest reads
//! from ([`BodyReader`]), and one wrapper for watching a body's progress
//! ([`Watched`]).

mod queue;
mod reader;
mod watch;

pub use self::queue::{channel, channel_of, BodyWriter, ChannelBody, WriteError};
pub use self::reader::{BodyReader, ReadEnd, ReadOutcome};
pub use self::watch::{BodyEnd, BodyWatch, Watched};

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;

use crate::error::ErrorCode;

/// The body type of every message the host moves: a boxed stream of bytes whose
/// errors are `error-code`s.
pub type HostBody = http_body_util::combinators::UnsyncBoxBody<Bytes, ErrorCode>;

/// Boxes any body whose errors can be turned into an `error-code`.
pub fn boxed<B>(body: B) -> HostBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<ErrorCode>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// An empty body.
pub fn empty() -> HostBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A complete body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> HostBody {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Which side of an exchange a body belongs to; it picks the error codes for limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A request body (incoming to a guest, or outgoing from one).
    Request,
    /// A response body.
    Response,
}

impl Direction {
    /// The `*-body-size` code for a body of `len` bytes that broke its length.
    pub fn size_error(self, len: u64) -> ErrorCode {
        match self {
            Direction::Request => ErrorCode::HttpRequestBodySize(Some(len)),
            Direction::Response => ErrorCode::HttpResponseBodySize(Some(len)),
        }
    }

    /// The `*-trailer-section-size` code.
    pub fn trailer_size_error(self) -> ErrorCode {
        match self {
            Direction::Request => ErrorCode::HttpRequestTrailerSectionSize(None),
            Direction::Response => ErrorCode::HttpResponseTrailerSectionSize(None),
        }
    }
}
