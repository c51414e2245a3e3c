//! Error codes: the conversions each version's adapter generates with
//! `error_code_conversions!` (here against a mirror of the generated type, so
//! that no engine is needed), the status and name of every code, and the codes
//! made from I/O errors. Holds: converting there and back is the identity.

use arbitrary::{Arbitrary, Unstructured};
use wasi_http_core::ErrorCode;

/// A mirror of what `bindgen!` generates for `error-code` (the names the macro
/// expects, the WIT's cases).
mod generated {
    use arbitrary::Arbitrary;

    #[derive(Arbitrary, Debug, Clone, PartialEq)]
    pub struct DnsErrorPayload {
        pub rcode: Option<String>,
        pub info_code: Option<u16>,
    }

    #[derive(Arbitrary, Debug, Clone, PartialEq)]
    pub struct TlsAlertReceivedPayload {
        pub alert_id: Option<u8>,
        pub alert_message: Option<String>,
    }

    #[derive(Arbitrary, Debug, Clone, PartialEq)]
    pub struct FieldSizePayload {
        pub field_name: Option<String>,
        pub field_size: Option<u32>,
    }

    #[derive(Arbitrary, Debug, Clone, PartialEq)]
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

    wasi_http_core::error_code_conversions!(ErrorCode);
}

#[derive(Arbitrary, Debug)]
struct Input {
    code: generated::ErrorCode,
    os_error: i32,
}

/// The target.
pub fn run(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let ours = ErrorCode::from(input.code.clone());
    let back = generated::ErrorCode::from(ours.clone());
    assert_eq!(back, input.code, "there and back");
    let status = ours.status();
    assert!(
        status.is_client_error() || status.is_server_error(),
        "{ours:?}: {status}"
    );
    assert!(!ours.name().is_empty());
    assert!(!ours.to_string().is_empty());
    let io = std::io::Error::from_raw_os_error(input.os_error);
    let _ = wasi_http_core::from_io_error(&io).status();
    // A code a lower layer put inside an I/O error comes back out unchanged.
    let wrapped = std::io::Error::other(ours.clone());
    assert_eq!(wasi_http_core::from_io_error(&wrapped), ours);
    assert_eq!(wasi_http_core::find_in_chain(&ours), Some(ours.clone()));
}
