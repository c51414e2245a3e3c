//! Header rules shared by both directions and both WASI versions: which headers
//! describe the connection (the host owns them), and `content-length`, parsed once
//! and strictly.

use http::{HeaderMap, HeaderName, HeaderValue};

/// Headers about the connection rather than the message (RFC 9110 §7.6.1): hop by
/// hop, managed by the host, stripped from responses the client receives.
pub const CONNECTION_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// Headers a guest may not set by default: the [`CONNECTION_HEADERS`], the other
/// hop-by-hop headers of RFC 2616 §13.5.1 (`proxy-authenticate`,
/// `proxy-authorization`, `te`), `host` (the host sends the request's authority)
/// and `http2-settings`.
pub const DEFAULT_FORBIDDEN_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
    "host",
    "http2-settings",
    "te",
];

/// Fields that must not be sent as trailers (RFC 9110 §6.5.1): framing, routing,
/// request modifiers, authentication, response control and content metadata. A
/// guest's trailers lose them.
pub const FORBIDDEN_TRAILERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "content-encoding",
    "content-type",
    "content-range",
    "trailer",
    "host",
    "te",
    "expect",
    "max-forwards",
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    "cache-control",
    "pragma",
    "authorization",
    "proxy-authorization",
    "www-authenticate",
    "proxy-authenticate",
    "set-cookie",
    "cookie",
    "age",
    "expires",
    "date",
    "location",
    "retry-after",
    "vary",
    "warning",
];

/// Whether `name` is in [`DEFAULT_FORBIDDEN_HEADERS`].
pub fn is_default_forbidden(name: &HeaderName) -> bool {
    DEFAULT_FORBIDDEN_HEADERS.contains(&name.as_str())
}

/// Removes the [`CONNECTION_HEADERS`].
pub fn strip_connection_headers(headers: &mut HeaderMap) {
    for name in CONNECTION_HEADERS {
        headers.remove(*name);
    }
}

/// A `content-length` that is not one decimal number, or values that disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidContentLength;

impl std::fmt::Display for InvalidContentLength {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid content-length")
    }
}

impl std::error::Error for InvalidContentLength {}

/// One `content-length` value: `1*DIGIT` (RFC 9110 §8.6) between optional
/// whitespace (which is not part of a field value), so `+5`, `-0`, `5 5` and
/// `0x5` are all refused, and so is a number past `u64`. The same reading as
/// [`content_length`]'s of each list item.
pub fn parse_content_length(value: &HeaderValue) -> Result<u64, InvalidContentLength> {
    parse_digits(value.as_bytes().trim_ascii())
}

fn parse_digits(bytes: &[u8]) -> Result<u64, InvalidContentLength> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(InvalidContentLength);
    }
    bytes.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(InvalidContentLength)
    })
}

/// The declared `content-length`, if any: every value (repeated headers, or a
/// comma-separated list) must be valid and equal.
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, InvalidContentLength> {
    let mut found = None;
    for value in headers.get_all(http::header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let n = parse_digits(part.trim_ascii())?;
            if found.is_some_and(|f| f != n) {
                return Err(InvalidContentLength);
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// Identical repeated `content-length` values become one (RFC 9110 §8.6); differing
/// or invalid ones are an error.
pub fn merge_content_length(headers: &mut HeaderMap) -> Result<(), InvalidContentLength> {
    let mut values = headers.get_all(http::header::CONTENT_LENGTH).iter();
    let first = values.next();
    let single = values.next().is_none() && first.is_none_or(|v| !v.as_bytes().contains(&b','));
    if single {
        // Nothing to merge; an invalid value is still an error.
        return first.map_or(Ok(()), |v| parse_content_length(v).map(drop));
    }
    if let Some(n) = content_length(headers)? {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    Ok(())
}

/// The field names a message's `trailer` header announces.
pub fn declared_trailers(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(http::header::TRAILER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(http::header::CONTENT_LENGTH, v.parse().unwrap());
        }
        headers
    }

    #[test]
    fn content_length_is_digits_only() {
        for bad in ["+5", "-0", "0x5", "5 5", "", "18446744073709551616", "٣"] {
            let value = HeaderValue::from_bytes(bad.as_bytes());
            if let Ok(value) = value {
                assert!(parse_content_length(&value).is_err(), "{bad:?}");
            }
        }
        let ok = |s: &str| parse_content_length(&HeaderValue::from_str(s).unwrap());
        assert_eq!(ok("0"), Ok(0));
        assert_eq!(ok("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(ok("007"), Ok(7));
        // Surrounding whitespace is not part of the value (found by fuzzing: the
        // single value and the list reading disagreed).
        assert_eq!(ok("7\t\t"), Ok(7));
        assert_eq!(content_length(&map(&[" 7 "])), Ok(Some(7)));
    }

    #[test]
    fn repeated_values_must_agree() {
        assert_eq!(content_length(&map(&[])), Ok(None));
        assert_eq!(content_length(&map(&["5", "5"])), Ok(Some(5)));
        assert_eq!(content_length(&map(&["5, 5"])), Ok(Some(5)));
        assert!(content_length(&map(&["5", "6"])).is_err());
        assert!(content_length(&map(&["+5"])).is_err());
        let mut merged = map(&["5", "5"]);
        merge_content_length(&mut merged).unwrap();
        assert_eq!(merged.get_all("content-length").iter().count(), 1);
        assert!(merge_content_length(&mut map(&["5", "7"])).is_err());
    }
}
