//! `future-trailers`: the trailers (or the error) at the end of an incoming body.

use crate::body::BodyReader;
use crate::error_code::ErrorCode;
use crate::fields::HostFields;
use wasmtime_wasi::p2::Pollable;

type Outcome = Result<Option<HostFields>, ErrorCode>;

/// The host side of a `future-trailers` resource.
pub struct HostFutureTrailers {
    state: State,
}

enum State {
    /// The rest of the body must be read (and discarded) to reach the trailers.
    Waiting(Box<BodyReader>),
    Ready(Outcome),
    Consumed,
}

impl HostFutureTrailers {
    pub(crate) fn new(reader: BodyReader) -> Self {
        HostFutureTrailers {
            state: State::Waiting(Box::new(reader)),
        }
    }

    /// The guest's `get`: `None` while not ready, `Some(Err(()))` once consumed.
    pub(crate) fn get(&mut self) -> Option<Result<Outcome, ()>> {
        if let State::Waiting(reader) = &mut self.state {
            let outcome = reader.finished_outcome()?;
            self.state = State::Ready(outcome);
        }
        match std::mem::replace(&mut self.state, State::Consumed) {
            State::Ready(outcome) => Some(Ok(outcome)),
            State::Consumed => Some(Err(())),
            State::Waiting(_) => None,
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for HostFutureTrailers {
    async fn ready(&mut self) {
        if let State::Waiting(reader) = &mut self.state {
            reader.drain().await;
        }
    }
}
