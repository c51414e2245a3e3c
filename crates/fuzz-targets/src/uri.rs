//! The request-target setters: authority, path-with-query, method and scheme as a
//! guest sets them, and the outgoing URI made of them. Holds: a valid authority
//! parses as one, with a port that fits in 16 bits; a valid authority and an
//! origin-form path always make an outgoing URI with exactly that authority.

use arbitrary::{Arbitrary, Unstructured};
use wasi_http_core::uri;

#[derive(Arbitrary, Debug)]
struct Input {
    authority: String,
    path: String,
    method: String,
    scheme: String,
    https: bool,
}

/// The target.
pub fn run(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let authority_ok = uri::valid_authority(&input.authority);
    if authority_ok {
        let parsed: http::uri::Authority = input.authority.parse().expect("valid parses");
        assert!(!parsed.host().is_empty());
        assert!(!input.authority.contains('@'));
        if let Some(port) = parsed.port() {
            assert!(
                port.as_str().parse::<u16>().is_ok(),
                "port fits: {}",
                input.authority
            );
        }
    }
    let path_ok = uri::valid_path_with_query(&input.path);
    let scheme = if input.https {
        http::uri::Scheme::HTTPS
    } else {
        http::uri::Scheme::HTTP
    };
    let made = uri::outgoing_uri(Some(scheme), Some(&input.authority), Some(&input.path));
    let origin_form = input.path.is_empty() || input.path.starts_with(['/', '?']);
    if authority_ok && path_ok && origin_form {
        let made = made.unwrap_or_else(|e| panic!("{:?} {:?}: {e}", input.authority, input.path));
        assert_eq!(
            made.authority().map(|a| a.as_str()),
            Some(input.authority.as_str())
        );
    }
    if let Some(method) = uri::parse_method(&input.method) {
        assert_eq!(method.as_str(), input.method);
    }
    if let Some(scheme) = uri::parse_scheme(&input.scheme) {
        let _ = uri::outgoing_uri(Some(scheme), Some(&input.authority), None);
    }
}
