//! `outgoing-response`, `incoming-response` and `response-outparam`.

use tokio::sync::oneshot;

use crate::body::{BodyWriter, Direction, HostBody, HostIncomingBody, OutgoingBodySlot};
use crate::error_code::ErrorCode;
use crate::fields::HostFields;

/// The host side of an `outgoing-response` resource: the guest's response.
pub struct HostOutgoingResponse {
    pub(crate) status: http::StatusCode,
    pub(crate) headers: HostFields,
    pub(crate) body: OutgoingBodySlot,
}

impl HostOutgoingResponse {
    pub(crate) fn new(headers: HostFields) -> Self {
        HostOutgoingResponse {
            status: http::StatusCode::OK,
            headers,
            body: OutgoingBodySlot::default(),
        }
    }

    /// The guest's `body`: once only. The declared `content-length` is enforced.
    pub(crate) fn take_body(&mut self, limits: &crate::Limits) -> Option<BodyWriter> {
        self.body
            .take_writer(self.headers.map(), limits, Direction::Response)
    }

    /// Turns the guest's response into an `http` response for the server.
    pub(crate) fn into_http(self, limits: &crate::Limits) -> http::Response<HostBody> {
        let declared = crate::body::declared_length(self.headers.map());
        let mut headers = self.headers.into_map();
        if declared.is_err() {
            // Conflicting lengths would make the framing ambiguous; send none.
            headers.remove(http::header::CONTENT_LENGTH);
        }
        let body = match self.body.into_body() {
            Some(body) => body,
            None => {
                // No body was written: finishing an empty one checks the declared
                // length, so `content-length: 5` with no body aborts instead of hanging.
                let expected = declared.unwrap_or(None);
                let (writer, body) = crate::body::channel(limits, expected, Direction::Response);
                let _ = writer.finish(None);
                body
            }
        };
        let mut response = http::Response::new(crate::body::channel_body(body));
        *response.status_mut() = self.status;
        *response.headers_mut() = headers;
        response
    }
}

/// What the guest delivered through a `response-outparam`.
pub type GuestResponse = Result<http::Response<HostBody>, ErrorCode>;

/// The host side of a `response-outparam` resource.
pub struct HostResponseOutparam {
    pub(crate) tx: oneshot::Sender<GuestResponse>,
}

/// The host side of an `incoming-response` resource: a response to the guest's request.
pub struct HostIncomingResponse {
    pub(crate) status: u16,
    pub(crate) headers: HostFields,
    pub(crate) body: Option<HostIncomingBody>,
}

/// A final (non-1xx) status the guest may set: 200..=999 per the `http` crate's range.
pub(crate) fn final_status(status: u16) -> Option<http::StatusCode> {
    http::StatusCode::from_u16(status)
        .ok()
        .filter(|s| !s.is_informational())
}

impl HostResponseOutparam {
    /// An outparam and the receiver the server awaits.
    pub(crate) fn new() -> (Self, oneshot::Receiver<GuestResponse>) {
        let (tx, rx) = oneshot::channel();
        (HostResponseOutparam { tx }, rx)
    }

    /// Hands the guest's response (or error) to the server.
    pub(crate) fn deliver(self, response: GuestResponse) {
        // The server may have stopped waiting (client gone); nothing to do then.
        let _ = self.tx.send(response);
    }

    /// `send-informational`: hyper's server cannot emit arbitrary 1xx responses, so
    /// this host refuses them with an error the guest can handle.
    pub(crate) fn send_informational(
        &self,
        status: u16,
        _headers: HostFields,
    ) -> Result<(), crate::error_code::HttpError> {
        if !(100..200).contains(&status) || status == 101 {
            return Err(ErrorCode::HttpProtocolError.into());
        }
        Err(ErrorCode::InternalError(Some(
            "informational (1xx) responses are not supported by this host".into(),
        ))
        .into())
    }
}
