//! `error-code`: one enum mirroring the WIT's cases (the same in `wasi:http@0.2.x` and
//! `@0.3.0`), the status a server answers with for each, and the mapping from typed
//! network errors (hyper, I/O) to the most precise case.

use std::fmt;

/// The payload of [`ErrorCode::DnsError`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsErrorPayload {
    /// The DNS response code (`NXDOMAIN`, `SERVFAIL`, ...), if known.
    pub rcode: Option<String>,
    /// An extended DNS error info code (RFC 8914), if known.
    pub info_code: Option<u16>,
}

/// The payload of [`ErrorCode::TlsAlertReceived`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsAlertReceivedPayload {
    /// The alert's numeric id.
    pub alert_id: Option<u8>,
    /// A description of the alert.
    pub alert_message: Option<String>,
}

/// The payload of the field-size cases of [`ErrorCode`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSizePayload {
    /// The field's name.
    pub field_name: Option<String>,
    /// The field's size.
    pub field_size: Option<u32>,
}

/// `wasi:http/types.error-code`, case for case.
///
/// It is also the error type of the bodies the host hands to hyper and receives from
/// it, so a failure in a body reaches the other side as the code it was.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // The cases are the WIT's; `name` gives each one's WIT spelling.
pub enum ErrorCode {
    DnsTimeout,
    DnsError(DnsErrorPayload),
    DestinationNotFound,
    DestinationUnavailable,
    DestinationIpProhibited,
    DestinationIpUnroutable,
    ConnectionRefused,
    ConnectionTerminated,
    ConnectionTimeout,
    ConnectionReadTimeout,
    ConnectionWriteTimeout,
    ConnectionLimitReached,
    TlsProtocolError,
    TlsCertificateError,
    TlsAlertReceived(TlsAlertReceivedPayload),
    HttpRequestDenied,
    HttpRequestLengthRequired,
    HttpRequestBodySize(Option<u64>),
    HttpRequestMethodInvalid,
    HttpRequestUriInvalid,
    HttpRequestUriTooLong,
    HttpRequestHeaderSectionSize(Option<u32>),
    HttpRequestHeaderSize(Option<FieldSizePayload>),
    HttpRequestTrailerSectionSize(Option<u32>),
    HttpRequestTrailerSize(FieldSizePayload),
    HttpResponseIncomplete,
    HttpResponseHeaderSectionSize(Option<u32>),
    HttpResponseHeaderSize(FieldSizePayload),
    HttpResponseBodySize(Option<u64>),
    HttpResponseTrailerSectionSize(Option<u32>),
    HttpResponseTrailerSize(FieldSizePayload),
    HttpResponseTransferCoding(Option<String>),
    HttpResponseContentCoding(Option<String>),
    HttpResponseTimeout,
    HttpUpgradeFailed,
    HttpProtocolError,
    LoopDetected,
    ConfigurationError,
    InternalError(Option<String>),
}

impl ErrorCode {
    /// The WIT case name, e.g. `connection-refused`.
    pub fn name(&self) -> &'static str {
        use ErrorCode::*;
        match self {
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

    /// A DNS error with this response code.
    pub fn dns(rcode: &str) -> ErrorCode {
        ErrorCode::DnsError(DnsErrorPayload {
            rcode: Some(rcode.to_owned()),
            info_code: None,
        })
    }

    /// An internal error with a description.
    pub fn internal(detail: impl Into<String>) -> ErrorCode {
        ErrorCode::InternalError(Some(detail.into()))
    }

    /// The status a server answers with when a guest responds with this code.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        use ErrorCode::*;
        match self {
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
            HttpRequestTrailerSectionSize(_)
            | HttpRequestTrailerSize(_)
            | ConfigurationError
            | InternalError(_) => S::INTERNAL_SERVER_ERROR,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        match self {
            ErrorCode::DnsError(DnsErrorPayload {
                rcode: Some(rcode), ..
            }) => write!(f, " ({rcode})"),
            ErrorCode::InternalError(Some(detail)) => write!(f, " ({detail})"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for ErrorCode {}

impl From<std::convert::Infallible> for ErrorCode {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

impl From<hyper::Error> for ErrorCode {
    /// A request body being received by a server.
    fn from(e: hyper::Error) -> Self {
        from_hyper_request_error(&e)
    }
}

/// Finds an `error-code` carried anywhere in an error's source chain.
pub fn find_in_chain(err: &(dyn std::error::Error + 'static)) -> Option<ErrorCode> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(code) = e.downcast_ref::<ErrorCode>() {
            return Some(code.clone());
        }
        cur = e.source();
    }
    None
}

/// Maps an error from hyper's client side (a response being received).
pub fn from_hyper_response_error(err: &hyper::Error) -> ErrorCode {
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
pub fn from_hyper_request_error(err: &hyper::Error) -> ErrorCode {
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

/// Maps an I/O error on an established or establishing connection. An `error-code`
/// inside the I/O error (put there by a lower layer, e.g. TLS) wins.
pub fn from_io_error(err: &std::io::Error) -> ErrorCode {
    use std::io::ErrorKind::*;
    if let Some(code) = err.get_ref().and_then(|e| e.downcast_ref::<ErrorCode>()) {
        return code.clone();
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

/// Converts between [`ErrorCode`] and a `bindgen!`-generated `error-code` type
/// (`From` both ways), for a module that has `DnsErrorPayload`,
/// `TlsAlertReceivedPayload` and `FieldSizePayload` in scope under those names.
/// Each version's adapter invokes it once.
#[macro_export]
macro_rules! error_code_conversions {
    ($generated:ty) => {
        const _: () = {
            use $crate::ErrorCode as O;
            type G = $generated;

            fn field_size_in(p: $crate::FieldSizePayload) -> FieldSizePayload {
                FieldSizePayload {
                    field_name: p.field_name,
                    field_size: p.field_size,
                }
            }
            fn field_size_out(p: FieldSizePayload) -> $crate::FieldSizePayload {
                $crate::FieldSizePayload {
                    field_name: p.field_name,
                    field_size: p.field_size,
                }
            }

            impl From<O> for G {
                fn from(code: O) -> G {
                    match code {
                        O::DnsTimeout => G::DnsTimeout,
                        O::DnsError(p) => G::DnsError(DnsErrorPayload {
                            rcode: p.rcode,
                            info_code: p.info_code,
                        }),
                        O::DestinationNotFound => G::DestinationNotFound,
                        O::DestinationUnavailable => G::DestinationUnavailable,
                        O::DestinationIpProhibited => G::DestinationIpProhibited,
                        O::DestinationIpUnroutable => G::DestinationIpUnroutable,
                        O::ConnectionRefused => G::ConnectionRefused,
                        O::ConnectionTerminated => G::ConnectionTerminated,
                        O::ConnectionTimeout => G::ConnectionTimeout,
                        O::ConnectionReadTimeout => G::ConnectionReadTimeout,
                        O::ConnectionWriteTimeout => G::ConnectionWriteTimeout,
                        O::ConnectionLimitReached => G::ConnectionLimitReached,
                        O::TlsProtocolError => G::TlsProtocolError,
                        O::TlsCertificateError => G::TlsCertificateError,
                        O::TlsAlertReceived(p) => G::TlsAlertReceived(TlsAlertReceivedPayload {
                            alert_id: p.alert_id,
                            alert_message: p.alert_message,
                        }),
                        O::HttpRequestDenied => G::HttpRequestDenied,
                        O::HttpRequestLengthRequired => G::HttpRequestLengthRequired,
                        O::HttpRequestBodySize(n) => G::HttpRequestBodySize(n),
                        O::HttpRequestMethodInvalid => G::HttpRequestMethodInvalid,
                        O::HttpRequestUriInvalid => G::HttpRequestUriInvalid,
                        O::HttpRequestUriTooLong => G::HttpRequestUriTooLong,
                        O::HttpRequestHeaderSectionSize(n) => G::HttpRequestHeaderSectionSize(n),
                        O::HttpRequestHeaderSize(p) => {
                            G::HttpRequestHeaderSize(p.map(field_size_in))
                        }
                        O::HttpRequestTrailerSectionSize(n) => G::HttpRequestTrailerSectionSize(n),
                        O::HttpRequestTrailerSize(p) => G::HttpRequestTrailerSize(field_size_in(p)),
                        O::HttpResponseIncomplete => G::HttpResponseIncomplete,
                        O::HttpResponseHeaderSectionSize(n) => G::HttpResponseHeaderSectionSize(n),
                        O::HttpResponseHeaderSize(p) => G::HttpResponseHeaderSize(field_size_in(p)),
                        O::HttpResponseBodySize(n) => G::HttpResponseBodySize(n),
                        O::HttpResponseTrailerSectionSize(n) => {
                            G::HttpResponseTrailerSectionSize(n)
                        }
                        O::HttpResponseTrailerSize(p) => {
                            G::HttpResponseTrailerSize(field_size_in(p))
                        }
                        O::HttpResponseTransferCoding(s) => G::HttpResponseTransferCoding(s),
                        O::HttpResponseContentCoding(s) => G::HttpResponseContentCoding(s),
                        O::HttpResponseTimeout => G::HttpResponseTimeout,
                        O::HttpUpgradeFailed => G::HttpUpgradeFailed,
                        O::HttpProtocolError => G::HttpProtocolError,
                        O::LoopDetected => G::LoopDetected,
                        O::ConfigurationError => G::ConfigurationError,
                        O::InternalError(s) => G::InternalError(s),
                    }
                }
            }

            impl From<G> for O {
                fn from(code: G) -> O {
                    match code {
                        G::DnsTimeout => O::DnsTimeout,
                        G::DnsError(p) => O::DnsError($crate::DnsErrorPayload {
                            rcode: p.rcode,
                            info_code: p.info_code,
                        }),
                        G::DestinationNotFound => O::DestinationNotFound,
                        G::DestinationUnavailable => O::DestinationUnavailable,
                        G::DestinationIpProhibited => O::DestinationIpProhibited,
                        G::DestinationIpUnroutable => O::DestinationIpUnroutable,
                        G::ConnectionRefused => O::ConnectionRefused,
                        G::ConnectionTerminated => O::ConnectionTerminated,
                        G::ConnectionTimeout => O::ConnectionTimeout,
                        G::ConnectionReadTimeout => O::ConnectionReadTimeout,
                        G::ConnectionWriteTimeout => O::ConnectionWriteTimeout,
                        G::ConnectionLimitReached => O::ConnectionLimitReached,
                        G::TlsProtocolError => O::TlsProtocolError,
                        G::TlsCertificateError => O::TlsCertificateError,
                        G::TlsAlertReceived(p) => {
                            O::TlsAlertReceived($crate::TlsAlertReceivedPayload {
                                alert_id: p.alert_id,
                                alert_message: p.alert_message,
                            })
                        }
                        G::HttpRequestDenied => O::HttpRequestDenied,
                        G::HttpRequestLengthRequired => O::HttpRequestLengthRequired,
                        G::HttpRequestBodySize(n) => O::HttpRequestBodySize(n),
                        G::HttpRequestMethodInvalid => O::HttpRequestMethodInvalid,
                        G::HttpRequestUriInvalid => O::HttpRequestUriInvalid,
                        G::HttpRequestUriTooLong => O::HttpRequestUriTooLong,
                        G::HttpRequestHeaderSectionSize(n) => O::HttpRequestHeaderSectionSize(n),
                        G::HttpRequestHeaderSize(p) => {
                            O::HttpRequestHeaderSize(p.map(field_size_out))
                        }
                        G::HttpRequestTrailerSectionSize(n) => O::HttpRequestTrailerSectionSize(n),
                        G::HttpRequestTrailerSize(p) => {
                            O::HttpRequestTrailerSize(field_size_out(p))
                        }
                        G::HttpResponseIncomplete => O::HttpResponseIncomplete,
                        G::HttpResponseHeaderSectionSize(n) => O::HttpResponseHeaderSectionSize(n),
                        G::HttpResponseHeaderSize(p) => {
                            O::HttpResponseHeaderSize(field_size_out(p))
                        }
                        G::HttpResponseBodySize(n) => O::HttpResponseBodySize(n),
                        G::HttpResponseTrailerSectionSize(n) => {
                            O::HttpResponseTrailerSectionSize(n)
                        }
                        G::HttpResponseTrailerSize(p) => {
                            O::HttpResponseTrailerSize(field_size_out(p))
                        }
                        G::HttpResponseTransferCoding(s) => O::HttpResponseTransferCoding(s),
                        G::HttpResponseContentCoding(s) => O::HttpResponseContentCoding(s),
                        G::HttpResponseTimeout => O::HttpResponseTimeout,
                        G::HttpUpgradeFailed => O::HttpUpgradeFailed,
                        G::HttpProtocolError => O::HttpProtocolError,
                        G::LoopDetected => O::LoopDetected,
                        G::ConfigurationError => O::ConfigurationError,
                        G::InternalError(s) => O::InternalError(s),
                    }
                }
            }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_case_and_its_detail() {
        assert_eq!(
            ErrorCode::dns("NXDOMAIN").to_string(),
            "DNS-error (NXDOMAIN)"
        );
        assert_eq!(ErrorCode::internal("x").to_string(), "internal-error (x)");
        assert_eq!(
            ErrorCode::ConnectionRefused.to_string(),
            "connection-refused"
        );
    }

    #[test]
    fn codes_map_to_statuses() {
        assert_eq!(ErrorCode::HttpRequestDenied.status(), 403);
        assert_eq!(ErrorCode::DnsTimeout.status(), 504);
        assert_eq!(ErrorCode::ConnectionRefused.status(), 502);
        assert_eq!(ErrorCode::LoopDetected.status(), 508);
        assert_eq!(ErrorCode::internal("x").status(), 500);
    }

    #[test]
    fn an_error_code_inside_an_io_error_wins() {
        let io = std::io::Error::other(ErrorCode::TlsCertificateError);
        assert_eq!(from_io_error(&io), ErrorCode::TlsCertificateError);
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(from_io_error(&io), ErrorCode::ConnectionRefused);
    }
}
