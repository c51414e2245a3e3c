//! 0.3's message resources: `request` and `response`, each with its headers and a
//! body that is either a received one (read when the guest consumes it) or one a
//! guest writes (already piped into the body queue, with its transmission future).

use std::time::Duration;

use http_body_util::BodyExt;
use wasi_http_core::body::Watched;
use wasi_http_core::{ErrorCode, Fields, HostBody, HostRequestOptions, OutgoingRequest};

use super::body::Transmission;

/// A message's body until it is consumed or sent.
pub(crate) struct Body {
    pub(crate) body: HostBody,
    /// Longest wait between two frames while the guest reads it.
    pub(crate) between_bytes: Option<Duration>,
}

impl Body {
    /// A body the host received.
    pub(crate) fn received(body: HostBody, between_bytes: Option<Duration>) -> Self {
        Body {
            body,
            between_bytes,
        }
    }

    /// A body a guest writes: `sent` resolves its transmission future when whoever
    /// takes it (hyper, or a guest consuming it) has read it to the end.
    pub(crate) fn written(body: HostBody, sent: Transmission) -> Self {
        Body {
            body: Watched::new(body, sent).boxed_unsync(),
            between_bytes: None,
        }
    }
}

/// The host side of a `request` resource.
pub struct HostRequest {
    pub(crate) method: http::Method,
    pub(crate) scheme: Option<http::uri::Scheme>,
    pub(crate) authority: Option<String>,
    pub(crate) path_with_query: Option<String>,
    pub(crate) headers: Fields,
    pub(crate) options: Option<HostRequestOptions>,
    pub(crate) body: Option<Body>,
}

/// The host side of a `response` resource.
pub struct HostResponse {
    pub(crate) status: http::StatusCode,
    pub(crate) headers: Fields,
    pub(crate) body: Option<Body>,
}

/// Where a guest's request goes: out (`client.send`) or on to the next
/// handler (a middleware's `handler.handle`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Destination {
    Network,
    Next,
}

impl HostRequest {
    /// A request received by a server, for a guest's `handler.handle`; its headers
    /// checked against the limits.
    pub(crate) fn received(
        parts: http::request::Parts,
        scheme: http::uri::Scheme,
        body: HostBody,
        limits: &wasi_http_core::Limits,
    ) -> Result<Self, wasi_http_core::FieldError> {
        let authority = wasi_http_core::uri::received_authority(&parts);
        let path_with_query = parts.uri.path_and_query().map(|p| p.as_str().to_owned());
        let headers = Fields::from_received(parts.headers, limits)?;
        Ok(HostRequest {
            authority,
            path_with_query,
            method: parts.method,
            scheme: Some(scheme),
            headers,
            options: None,
            body: Some(Body::received(body, None)),
        })
    }

    /// The guest's request as one to send (`client.send`): its target checked (no
    /// scheme is `https`, the safe choice the WIT leaves to the host), its framing
    /// checked, its body the one the guest writes.
    pub(crate) fn into_outgoing(
        self,
        hooks: &dyn wasi_http_core::WasiHttpHooks,
        to: Destination,
    ) -> Result<OutgoingRequest, ErrorCode> {
        let scheme = self.scheme.unwrap_or(http::uri::Scheme::HTTPS);
        if !hooks.is_supported_scheme(&scheme) {
            return Err(ErrorCode::HttpProtocolError);
        }
        let uri = match (to, self.authority.as_deref()) {
            // A handler takes a request without an authority (it is not
            // connecting anywhere): the target alone, in origin form.
            (Destination::Next, None) => self
                .path_with_query
                .as_deref()
                .filter(|p| !p.is_empty())
                .unwrap_or("/")
                .parse::<http::Uri>()
                .map_err(|_| ErrorCode::HttpRequestUriInvalid)?,
            (_, authority) => wasi_http_core::uri::outgoing_uri(
                Some(scheme),
                authority,
                self.path_with_query.as_deref(),
            )?,
        };
        if wasi_http_core::headers::content_length(self.headers.map()).is_err() {
            return Err(ErrorCode::HttpProtocolError);
        }
        let body = match self.body {
            Some(body) => body.body,
            None => wasi_http_core::body::empty(),
        };
        let mut request = http::Request::new(body);
        *request.method_mut() = self.method;
        *request.uri_mut() = uri;
        *request.headers_mut() = self.headers.into_map();
        let mut outgoing = OutgoingRequest::new(request);
        if let Some(options) = self.options {
            outgoing.options = options.options().clone();
        }
        Ok(outgoing)
    }
}

impl HostResponse {
    /// A response received for a guest's request.
    pub(crate) fn received(
        status: http::StatusCode,
        headers: Fields,
        body: HostBody,
        between_bytes: Option<Duration>,
    ) -> Self {
        HostResponse {
            status,
            headers,
            body: Some(Body::received(body, between_bytes)),
        }
    }

    /// The guest's response as an `http` response for the server. A response whose
    /// body was consumed has none left to send.
    pub(crate) fn into_http(self) -> http::Response<HostBody> {
        let mut headers = self.headers.into_map();
        if wasi_http_core::headers::content_length(&headers).is_err() {
            // Conflicting or invalid lengths would make the framing ambiguous.
            headers.remove(http::header::CONTENT_LENGTH);
        }
        let body = match self.body {
            Some(body) => body.body,
            None => wasi_http_core::body::empty(),
        };
        let mut response = http::Response::new(body);
        *response.status_mut() = self.status;
        *response.headers_mut() = headers;
        response
    }
}
