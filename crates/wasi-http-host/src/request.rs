//! `incoming-request`, `outgoing-request` and `request-options`.

use std::time::Duration;

use crate::bindings::http::types::{Method, Scheme};
use crate::body::{BodyWriter, HostIncomingBody, OutgoingBodySlot};
use crate::fields::HostFields;

/// The host side of an `incoming-request` resource: a request received by the server.
pub struct HostIncomingRequest {
    pub(crate) method: http::Method,
    pub(crate) scheme: Option<http::uri::Scheme>,
    pub(crate) authority: Option<String>,
    pub(crate) path_with_query: Option<String>,
    pub(crate) headers: HostFields,
    pub(crate) body: Option<HostIncomingBody>,
}

/// The host side of an `outgoing-request` resource: a request the guest builds.
pub struct HostOutgoingRequest {
    pub(crate) method: Method,
    pub(crate) scheme: Option<Scheme>,
    pub(crate) authority: Option<String>,
    pub(crate) path_with_query: Option<String>,
    pub(crate) headers: HostFields,
    pub(crate) body: OutgoingBodySlot,
}

impl HostOutgoingRequest {
    pub(crate) fn new(headers: HostFields) -> Self {
        HostOutgoingRequest {
            method: Method::Get,
            scheme: None,
            authority: None,
            path_with_query: None,
            headers,
            body: OutgoingBodySlot::default(),
        }
    }

    /// The guest's `body`: once only. The declared `content-length` is enforced.
    pub(crate) fn take_body(&mut self, limits: &crate::Limits) -> Option<BodyWriter> {
        let direction = crate::body::Direction::Request;
        self.body.take_writer(self.headers.map(), limits, direction)
    }
}

/// The host side of a `request-options` resource.
#[derive(Debug, Clone, Default)]
pub struct HostRequestOptions {
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) first_byte_timeout: Option<Duration>,
    pub(crate) between_bytes_timeout: Option<Duration>,
}

/// Converts the WIT method to `http`'s; `None` when an `other` method is not a token.
pub(crate) fn to_http_method(method: &Method) -> Option<http::Method> {
    Some(match method {
        Method::Get => http::Method::GET,
        Method::Head => http::Method::HEAD,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Delete => http::Method::DELETE,
        Method::Connect => http::Method::CONNECT,
        Method::Options => http::Method::OPTIONS,
        Method::Trace => http::Method::TRACE,
        Method::Patch => http::Method::PATCH,
        Method::Other(s) => return http::Method::from_bytes(s.as_bytes()).ok(),
    })
}

/// Converts `http`'s method to the WIT method.
pub(crate) fn from_http_method(method: &http::Method) -> Method {
    match *method {
        http::Method::GET => Method::Get,
        http::Method::HEAD => Method::Head,
        http::Method::POST => Method::Post,
        http::Method::PUT => Method::Put,
        http::Method::DELETE => Method::Delete,
        http::Method::CONNECT => Method::Connect,
        http::Method::OPTIONS => Method::Options,
        http::Method::TRACE => Method::Trace,
        http::Method::PATCH => Method::Patch,
        ref other => Method::Other(other.as_str().to_owned()),
    }
}

pub(crate) fn to_http_scheme(scheme: &Scheme) -> Option<http::uri::Scheme> {
    match scheme {
        Scheme::Http => Some(http::uri::Scheme::HTTP),
        Scheme::Https => Some(http::uri::Scheme::HTTPS),
        Scheme::Other(s) => s.parse().ok(),
    }
}

pub(crate) fn from_http_scheme(scheme: &http::uri::Scheme) -> Scheme {
    if *scheme == http::uri::Scheme::HTTP {
        Scheme::Http
    } else if *scheme == http::uri::Scheme::HTTPS {
        Scheme::Https
    } else {
        Scheme::Other(scheme.as_str().to_owned())
    }
}

/// An authority the host can connect to: valid syntax, no user info, a u16 port.
pub(crate) fn valid_authority(authority: &str) -> bool {
    let Ok(parsed) = authority.parse::<http::uri::Authority>() else {
        return false;
    };
    if authority.contains('@') || parsed.host().is_empty() {
        return false;
    }
    // `Authority` accepts any digits as a port; a connectable port fits in u16.
    if authority.ends_with(']') {
        return true;
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => {
            let bracketed = host.starts_with('[') && host.ends_with(']');
            (!host.contains(':') || bracketed) && port.parse::<u16>().is_ok()
        }
        None => true,
    }
}

pub(crate) fn valid_path_with_query(path: &str) -> bool {
    path.parse::<http::uri::PathAndQuery>().is_ok()
        && (path.starts_with('/') || path == "*" || path.starts_with('?') || path.is_empty())
}
