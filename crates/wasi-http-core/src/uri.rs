//! Request-target rules: which authorities, paths, methods and schemes a guest may
//! set, and the absolute URI an outgoing request is sent to.

use crate::error::ErrorCode;

/// An authority the host can connect to: `host[:port]` (RFC 3986 §3.2) with a
/// host that is a registered name (unreserved and sub-delims), an
/// IPv4 address or a bracketed IPv6 literal, no user info, and a port of one to
/// five digits that fits in 16 bits. Stricter than `http`'s parser, which
/// accepts everything this does (the `uri` fuzz target checks it); checked on
/// every request, so a byte scan rather than a parse (but for an IPv6 literal).
pub fn valid_authority(authority: &str) -> bool {
    let bytes = authority.as_bytes();
    let (host, port) = if bytes.first() == Some(&b'[') {
        let Some(close) = bytes.iter().position(|&b| b == b']') else {
            return false;
        };
        // IPv6 (with embedded IPv4); IPvFuture and zones are not connectable here.
        // A real parse: a byte scan let `[:::::::::]` through, which `http` refuses.
        let literal = std::str::from_utf8(&bytes[1..close]).ok();
        if literal
            .and_then(|l| l.parse::<std::net::Ipv6Addr>().ok())
            .is_none()
        {
            return false;
        }
        match &bytes[close + 1..] {
            [] => return true,
            [b':', port @ ..] => (&bytes[..=close], port),
            _ => return false,
        }
    } else {
        match bytes.iter().position(|&b| b == b':') {
            Some(colon) => (&bytes[..colon], &bytes[colon + 1..]),
            None => (bytes, &[][..]),
        }
    };
    if host.is_empty() {
        return false;
    }
    if host[0] != b'[' && !reg_name(host) {
        return false;
    }
    if bytes.len() > host.len() {
        // A separator was there: the port is one to five digits up to 65535.
        return !port.is_empty()
            && port.len() <= 5
            && port.iter().all(u8::is_ascii_digit)
            && port.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')) <= 65535;
    }
    true
}

/// A registered name or IPv4 address: unreserved and sub-delims characters
/// (RFC 3986 §3.2.2). %-escapes are refused: `http` (and so every client and
/// server built on it) refuses them in a host.
fn reg_name(host: &[u8]) -> bool {
    host.iter().all(|&b| {
        matches!(b,
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~'
            | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=')
    })
}

/// A path-with-query a request may carry: origin form (`/p?q`), a bare query, `*`
/// or empty.
pub fn valid_path_with_query(path: &str) -> bool {
    path.parse::<http::uri::PathAndQuery>().is_ok()
        && (path.starts_with('/') || path == "*" || path.starts_with('?') || path.is_empty())
}

/// A method a guest may set: any token (RFC 9110 §9.1).
pub fn parse_method(method: &str) -> Option<http::Method> {
    http::Method::from_bytes(method.as_bytes()).ok()
}

/// A scheme a guest may set: any valid URI scheme.
pub fn parse_scheme(scheme: &str) -> Option<http::uri::Scheme> {
    scheme.parse().ok()
}

/// The absolute URI of an outgoing request. Without a scheme the host picks
/// `https` (the WIT leaves the choice to the host; it is the safe one); without an
/// authority the request is invalid; an absent or empty path is `/` (RFC 9110
/// §4.2.3).
pub fn outgoing_uri(
    scheme: Option<http::uri::Scheme>,
    authority: Option<&str>,
    path_with_query: Option<&str>,
) -> Result<http::Uri, ErrorCode> {
    let authority = authority.ok_or(ErrorCode::HttpRequestUriInvalid)?;
    let path = path_with_query.unwrap_or("/");
    let path = if path.is_empty() || path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    http::Uri::builder()
        .scheme(scheme.unwrap_or(http::uri::Scheme::HTTPS))
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|_| ErrorCode::HttpRequestUriInvalid)
}

/// The authority of a request received by a server: the URI's (HTTP/2, or an
/// absolute-form target), else the `Host` header (HTTP/1.1); only a valid one
/// ([`valid_authority`]): a server checks it first with
/// [`check_received_authority`].
pub fn received_authority(parts: &http::request::Parts) -> Option<String> {
    parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            parts
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .filter(|a| valid_authority(a))
}

/// Why a request received from the network has no acceptable authority (the
/// server answers `400 Bad Request` before any guest sees it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthorityError {
    /// HTTP/1.1 without `Host`, or HTTP/2 with neither `:authority` nor `Host`
    /// (or a `CONNECT` without `:authority`).
    Missing,
    /// More than one `Host` header.
    Duplicate,
    /// A `Host` or `:authority` that is not `host[:port]` with a port that fits
    /// in 16 bits (no spaces, slashes, user info or unclosed brackets).
    Invalid,
    /// HTTP/2 `:authority` and `Host` that name different authorities.
    Conflicting,
}

impl std::fmt::Display for AuthorityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthorityError::Missing => "no Host header (HTTP/1.1) or :authority (HTTP/2)",
            AuthorityError::Duplicate => "more than one Host header",
            AuthorityError::Invalid => "invalid Host or :authority",
            AuthorityError::Conflicting => ":authority and Host differ",
        })
    }
}

impl std::error::Error for AuthorityError {}

/// Checks the authority of a request received from the network (RFC 9112 §3.2,
/// RFC 9113 §8.3.1 and §8.5): HTTP/1.1 carries exactly one valid `Host`
/// (HTTP/1.0 at most one); HTTP/2 a valid `:authority` or `Host`, the same if
/// both, and `CONNECT` always `:authority`. An absolute-form HTTP/1.1 target's
/// authority must be valid too.
pub fn check_received_authority<B>(request: &http::Request<B>) -> Result<(), AuthorityError> {
    let mut hosts = request.headers().get_all(http::header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(AuthorityError::Duplicate);
    }
    let host = match host {
        Some(value) => match value.to_str() {
            Ok(host) if valid_authority(host) => Some(host),
            _ => return Err(AuthorityError::Invalid),
        },
        None => None,
    };
    let target = request.uri().authority().map(|a| a.as_str());
    if target.is_some_and(|a| !valid_authority(a)) {
        return Err(AuthorityError::Invalid);
    }
    let h1 = request.version() <= http::Version::HTTP_11;
    if h1 {
        if host.is_none() && request.version() == http::Version::HTTP_11 {
            return Err(AuthorityError::Missing);
        }
        return Ok(());
    }
    match (target, host) {
        (None, _) if request.method() == http::Method::CONNECT => Err(AuthorityError::Missing),
        (None, None) => Err(AuthorityError::Missing),
        (Some(target), Some(host)) if !target.eq_ignore_ascii_case(host) => {
            Err(AuthorityError::Conflicting)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        for ok in [
            "example.com",
            "a.b:80",
            "[::1]",
            "[::1]:8080",
            "127.0.0.1:65535",
            "xn--bcher-kva.example:0",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(valid_authority(ok), "{ok}");
        }
        for bad in [
            "",
            "u@a.example",
            "a.example:99999",
            "a b",
            "[::1",
            "::1:80",
            "a/b",
            "a.example:",
            "a.example:-1",
            "a.example:123456",
            "[::1]x",
            "[]",
            "[v1.x]",
            "a%2",
            "a:b:c",
            "[::1]:",
            "a%20b.example",
            "[:::::::::]",
            "[1:2:3:4:5:6:7:8:9]",
            "[1.2.3.4]",
        ] {
            assert!(!valid_authority(bad), "{bad}");
        }
    }

    #[test]
    fn every_valid_authority_byte_is_one_http_accepts() {
        for b in 0u8..128 {
            let authority = format!("a{}b:1", b as char);
            if valid_authority(&authority) {
                let parsed = authority.parse::<http::uri::Authority>();
                assert!(parsed.is_ok(), "{authority:?}");
            }
        }
    }

    #[test]
    fn outgoing_uris_get_defaults() {
        let uri = outgoing_uri(None, Some("a.test"), None).unwrap();
        assert_eq!(uri.to_string(), "https://a.test/");
        let uri = outgoing_uri(Some(http::uri::Scheme::HTTP), Some("a.test"), Some("?q")).unwrap();
        assert_eq!(uri.to_string(), "http://a.test/?q");
        assert_eq!(
            outgoing_uri(None, None, None),
            Err(ErrorCode::HttpRequestUriInvalid)
        );
    }

    #[test]
    fn received_authorities_are_checked() {
        use http::Version;
        let req = |version: Version, method: &str, uri: &str, hosts: &[&[u8]]| {
            let mut b = http::Request::builder()
                .version(version)
                .method(method)
                .uri(uri);
            for h in hosts {
                b = b.header(
                    http::header::HOST,
                    http::HeaderValue::from_bytes(h).unwrap(),
                );
            }
            b.body(()).unwrap()
        };
        let v11 = Version::HTTP_11;
        let v2 = Version::HTTP_2;
        let check = |r: &http::Request<()>| check_received_authority(r);
        assert_eq!(check(&req(v11, "GET", "/", &[b"a.example"])), Ok(()));
        assert_eq!(check(&req(v11, "GET", "/", &[b"a.example:8080"])), Ok(()));
        assert_eq!(check(&req(v11, "GET", "/", &[b"[::1]:80"])), Ok(()));
        assert_eq!(
            check(&req(v11, "GET", "/", &[])),
            Err(AuthorityError::Missing)
        );
        assert_eq!(
            check(&req(v11, "GET", "/", &[b"a.example", b"b.example"])),
            Err(AuthorityError::Duplicate)
        );
        for bad in [
            &b"a b"[..],
            b"a/b",
            b"u@a.example",
            b"a.example:99999",
            b"[::1",
            b"",
            b"\xff",
        ] {
            assert_eq!(
                check(&req(v11, "GET", "/", &[bad])),
                Err(AuthorityError::Invalid),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(check(&req(Version::HTTP_10, "GET", "/", &[])), Ok(()));
        assert_eq!(
            check(&req(Version::HTTP_10, "GET", "/", &[b"a b"])),
            Err(AuthorityError::Invalid)
        );
        assert_eq!(
            check(&req(v11, "GET", "http://a.example/x", &[b"a.example"])),
            Ok(())
        );
        assert_eq!(
            check(&req(v11, "CONNECT", "a.example:443", &[b"a.example:443"])),
            Ok(())
        );
        assert_eq!(check(&req(v2, "GET", "https://a.example/", &[])), Ok(()));
        assert_eq!(check(&req(v2, "GET", "/", &[b"a.example"])), Ok(()));
        assert_eq!(
            check(&req(v2, "GET", "/", &[])),
            Err(AuthorityError::Missing)
        );
        assert_eq!(
            check(&req(v2, "CONNECT", "/", &[b"a.example:443"])),
            Err(AuthorityError::Missing)
        );
        assert_eq!(
            check(&req(v2, "GET", "https://a.example/", &[b"b.example"])),
            Err(AuthorityError::Conflicting)
        );
        assert_eq!(
            check(&req(v2, "GET", "https://a.example/", &[b"A.example"])),
            Ok(())
        );
    }
}
