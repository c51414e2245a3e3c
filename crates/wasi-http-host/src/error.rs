//! The error of a host function whose WIT result carries an `error-code` (both
//! versions): an `error-code` for the guest, or a trap that ends its call.

use std::fmt;

use wasi_http_core::ErrorCode;

/// An `error-code` for the guest, or a trap.
#[derive(Debug)]
pub struct HttpError(Repr);

#[derive(Debug)]
enum Repr {
    Code(ErrorCode),
    Trap(wasmtime::Error),
}

impl HttpError {
    /// An error that traps the guest with `err` instead of returning an `error-code`.
    pub fn trap(err: impl Into<wasmtime::Error>) -> Self {
        HttpError(Repr::Trap(err.into()))
    }

    /// The `error-code` this error carries, if it is not a trap.
    pub fn code(&self) -> Option<&ErrorCode> {
        match &self.0 {
            Repr::Code(code) => Some(code),
            Repr::Trap(_) => None,
        }
    }

    /// The value a generated `convert-error-code` returns: the code in the
    /// version's generated type, or the trap.
    pub(crate) fn into_guest<G: From<ErrorCode>>(self) -> wasmtime::Result<G> {
        match self.0 {
            Repr::Code(code) => Ok(code.into()),
            Repr::Trap(err) => Err(err),
        }
    }
}

impl From<ErrorCode> for HttpError {
    fn from(code: ErrorCode) -> Self {
        HttpError(Repr::Code(code))
    }
}

impl From<wasmtime::component::ResourceTableError> for HttpError {
    fn from(err: wasmtime::component::ResourceTableError) -> Self {
        HttpError::trap(err)
    }
}

impl From<wasmtime::Error> for HttpError {
    fn from(err: wasmtime::Error) -> Self {
        HttpError::trap(err)
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Code(code) => write!(f, "{code}"),
            Repr::Trap(err) => write!(f, "trap: {err}"),
        }
    }
}

impl std::error::Error for HttpError {}
