//! `wasi:http/types.error-code`: the host's error type for trappable WIT results, and
//! the mapping from typed network errors (hyper, I/O, TLS) to precise error codes.

use std::fmt;

pub use crate::bindings::http::types::ErrorCode;

/// The error of a host function whose WIT result carries an `error-code`: either an
/// `error-code` for the guest, or a trap that ends the guest's call.
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

    /// Turns this error into the value a generated host trait returns.
    pub(crate) fn into_guest(self) -> wasmtime::Result<ErrorCode> {
        match self.0 {
            Repr::Code(code) => Ok(code),
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

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Code(code) => write!(f, "{}", name(code)),
            Repr::Trap(err) => write!(f, "trap: {err}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// An `error-code` as a `std::error::Error`, so it can travel through hyper and
/// `wasmtime::Error` and be recovered by downcasting (`http-error-code` does this).
#[derive(Debug, Clone)]
pub struct ErrorCodeError(pub ErrorCode);

impl fmt::Display for ErrorCodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(name(&self.0))?;
        match &self.0 {
            ErrorCode::DnsError(p) => {
                if let Some(rcode) = &p.rcode {
                    write!(f, " ({rcode})")?;
                }
            }
            ErrorCode::InternalError(Some(detail)) => write!(f, " ({detail})")?,
            _ => {}
        }
        Ok(())
    }
}

impl std::error::Error for ErrorCodeError {}

/// The WIT case name of an error code, e.g. `connection-refused`.
pub fn name(code: &ErrorCode) -> &'static str {
    use ErrorCode::*;
    match code {
        DnsTimeout => "DNS-timeout",
        DnsError(_) => "DNS-error",
        DestinationNotFound => "destination-not-found",
        DestinationUnavailable => "destination-unavailable",
        DestinationIpProhibited => "destination-IP-prohibited",
        DestinationIpUnroutable => "destination-IP-unroutable",
        ConnectionRefused => "connection-refused",
        ConnectionTerminated => "connection-terminated",
        ConnectionTimeout => "connection-timeout",
        ConnectionReadTimeout => "connection-read-timeout",
        ConnectionWriteTimeout => "connection-write-timeout",
        ConnectionLimitReached => "connection-limit-reached",
        TlsProtocolError => "TLS-protocol-error",
        TlsCertificateError => "TLS-certificate-error",
        TlsAlertReceived(_) => "TLS-alert-received",
        HttpRequestDenied => "HTTP-request-denied",
        HttpRequestLengthRequired => "HTTP-request-length-required",
        HttpRequestBodySize(_) => "HTTP-request-body-size",
        HttpRequestMethodInvalid => "HTTP-request-method-invalid",
        HttpRequestUriInvalid => "HTTP-request-URI-invalid",
        HttpRequestUriTooLong => "HTTP-request-URI-too-long",
        HttpRequestHeaderSectionSize(_) => "HTTP-request-header-section-size",
        HttpRequestHeaderSize(_) => "HTTP-request-header-size",
        HttpRequestTrailerSectionSize(_) => "HTTP-request-trailer-section-size",
        HttpRequestTrailerSize(_) => "HTTP-request-trailer-size",
        HttpResponseIncomplete => "HTTP-response-incomplete",
        HttpResponseHeaderSectionSize(_) => "HTTP-response-header-section-size",
        HttpResponseHeaderSize(_) => "HTTP-response-header-size",
        HttpResponseBodySize(_) => "HTTP-response-body-size",
        HttpResponseTrailerSectionSize(_) => "HTTP-response-trailer-section-size",
        HttpResponseTrailerSize(_) => "HTTP-response-trailer-size",
        HttpResponseTransferCoding(_) => "HTTP-response-transfer-coding",
        HttpResponseContentCoding(_) => "HTTP-response-content-coding",
        HttpResponseTimeout => "HTTP-response-timeout",
        HttpUpgradeFailed => "HTTP-upgrade-failed",
        HttpProtocolError => "HTTP-protocol-error",
        LoopDetected => "loop-detected",
        ConfigurationError => "configuration-error",
        InternalError(_) => "internal-error",
    }
}

/// Finds an `error-code` carried anywhere in an error's source chain.
pub(crate) fn find_in_chain(err: &(dyn std::error::Error + 'static)) -> Option<ErrorCode> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(ErrorCodeError(code)) = e.downcast_ref::<ErrorCodeError>() {
            return Some(code.clone());
        }
        cur = e.source();
    }
    None
}

/// Maps an error from hyper's client side (a response being received) to an error code.
pub(crate) fn from_hyper_response_error(err: &hyper::Error) -> ErrorCode {
    if let Some(code) = find_in_chain(err) {
        return code;
    }
    if err.is_parse_too_large() {
        ErrorCode::HttpResponseHeaderSectionSize(None)
    } else if err.is_parse_status() || err.is_parse() {
        ErrorCode::HttpProtocolError
    } else if err.is_incomplete_message()
        || io_source(err).is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof)
    {
        // The peer closed before the message (head or declared body) was complete.
        ErrorCode::HttpResponseIncomplete
    } else if err.is_timeout() {
        ErrorCode::HttpResponseTimeout
    } else if err.is_canceled() || err.is_closed() {
        ErrorCode::ConnectionTerminated
    } else if let Some(io) = io_source(err) {
        from_io_error(io)
    } else {
        ErrorCode::HttpProtocolError
    }
}

/// Maps an error from hyper's server side (a request body being received).
pub(crate) fn from_hyper_request_error(err: &hyper::Error) -> ErrorCode {
    if let Some(code) = find_in_chain(err) {
        return code;
    }
    if err.is_incomplete_message() || err.is_canceled() || err.is_closed() {
        ErrorCode::ConnectionTerminated
    } else if err.is_timeout() {
        ErrorCode::ConnectionReadTimeout
    } else if let Some(io) = io_source(err) {
        from_io_error(io)
    } else {
        ErrorCode::HttpProtocolError
    }
}

fn io_source<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut cur = err.source();
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = e.source();
    }
    None
}

/// Maps an I/O error on an established or establishing connection.
pub(crate) fn from_io_error(err: &std::io::Error) -> ErrorCode {
    use std::io::ErrorKind::*;
    if let Some(tls) = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return from_tls_error(tls);
    }
    match err.kind() {
        ConnectionRefused => ErrorCode::ConnectionRefused,
        TimedOut => ErrorCode::ConnectionTimeout,
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => {
            ErrorCode::ConnectionTerminated
        }
        HostUnreachable | NetworkUnreachable | AddrNotAvailable => {
            ErrorCode::DestinationUnavailable
        }
        _ => ErrorCode::InternalError(Some(err.to_string())),
    }
}

/// Maps a rustls error to the TLS error codes.
pub(crate) fn from_tls_error(err: &rustls::Error) -> ErrorCode {
    match err {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            ErrorCode::TlsCertificateError
        }
        rustls::Error::AlertReceived(alert) => {
            ErrorCode::TlsAlertReceived(crate::bindings::http::types::TlsAlertReceivedPayload {
                alert_id: Some(u8::from(*alert)),
                alert_message: Some(format!("{alert:?}")),
            })
        }
        _ => ErrorCode::TlsProtocolError,
    }
}

/// The status a server answers with when the guest responds with `code`.
pub fn status_for(code: &ErrorCode) -> http::StatusCode {
    use http::StatusCode as S;
    use ErrorCode::*;
    match code {
        HttpRequestDenied => S::FORBIDDEN,
        HttpRequestLengthRequired => S::LENGTH_REQUIRED,
        HttpRequestBodySize(_) => S::PAYLOAD_TOO_LARGE,
        HttpRequestMethodInvalid => S::METHOD_NOT_ALLOWED,
        HttpRequestUriInvalid => S::BAD_REQUEST,
        HttpRequestUriTooLong => S::URI_TOO_LONG,
        HttpRequestHeaderSectionSize(_) | HttpRequestHeaderSize(_) => {
            S::REQUEST_HEADER_FIELDS_TOO_LARGE
        }
        DnsTimeout
        | ConnectionTimeout
        | ConnectionReadTimeout
        | ConnectionWriteTimeout
        | HttpResponseTimeout => S::GATEWAY_TIMEOUT,
        DnsError(_)
        | DestinationNotFound
        | DestinationUnavailable
        | DestinationIpProhibited
        | DestinationIpUnroutable
        | ConnectionRefused
        | ConnectionTerminated
        | TlsProtocolError
        | TlsCertificateError
        | TlsAlertReceived(_)
        | HttpResponseIncomplete
        | HttpResponseHeaderSectionSize(_)
        | HttpResponseHeaderSize(_)
        | HttpResponseBodySize(_)
        | HttpResponseTrailerSectionSize(_)
        | HttpResponseTrailerSize(_)
        | HttpResponseTransferCoding(_)
        | HttpResponseContentCoding(_)
        | HttpProtocolError
        | HttpUpgradeFailed => S::BAD_GATEWAY,
        ConnectionLimitReached => S::SERVICE_UNAVAILABLE,
        LoopDetected => S::LOOP_DETECTED,
        _ => S::INTERNAL_SERVER_ERROR,
    }
}
