//! Request-target rules: which authorities, paths, methods and schemes a guest may
//! set, and the absolute URI an outgoing request is sent to.

use crate::error::ErrorCode;

/// An authority the host can connect to: valid syntax, a host, no user info, and a
/// port (if any) that fits in 16 bits.
pub fn valid_authority(authority: &str) -> bool {
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
/// absolute-form target), else the `Host` header (HTTP/1.1).
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
        ] {
            assert!(!valid_authority(bad), "{bad}");
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
}
