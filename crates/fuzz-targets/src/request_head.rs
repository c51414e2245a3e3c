//! Request heads from the network turned into what a guest sees: bytes parsed
//! as hyper parses an HTTP/1.1 head (with `httparse`), then the server's checks
//! (authority, content-length), then the guest's view (method, path, authority,
//! header fields). Holds: a request the server admits gives the guest a valid
//! authority, path and method, and fields within the limits or a refusal.

use wasi_http_core::{uri, Fields, Limits};

/// The target.
pub fn run(data: &[u8]) {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = parsed.parse(data) else {
        return;
    };
    let (Some(method), Some(path), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return;
    };
    // As hyper builds the request: invalid pieces are a 400 before the server.
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path)
        .version(if version == 1 {
            http::Version::HTTP_11
        } else {
            http::Version::HTTP_10
        });
    for h in parsed.headers.iter() {
        builder = builder.header(h.name, h.value);
    }
    let Ok(request) = builder.body(()) else {
        return;
    };
    if uri::check_received_authority(&request).is_err() {
        return; // 400
    }
    if wasi_http_core::headers::content_length(request.headers()).is_err() {
        return; // 400 (hyper)
    }
    let (parts, ()) = request.into_parts();
    let authority = uri::received_authority(&parts);
    match &authority {
        Some(a) => assert!(uri::valid_authority(a), "{a:?}"),
        None => assert_eq!(parts.version, http::Version::HTTP_10, "HTTP/1.1 needs one"),
    }
    assert!(uri::parse_method(parts.method.as_str()).is_some());
    if let Some(pq) = parts.uri.path_and_query() {
        let guest_path = pq.as_str();
        if parts.method != http::Method::CONNECT && parts.method != http::Method::OPTIONS {
            assert!(
                uri::valid_path_with_query(guest_path),
                "{guest_path:?} from {path:?}"
            );
        }
    }
    let mut limits = Limits::default();
    limits.max_field_count = 16;
    limits.max_field_bytes = 512;
    if let Ok(fields) = Fields::from_received(parts.headers, &limits) {
        assert!(fields.entries().len() <= 16);
        let bytes: usize = fields
            .entries()
            .iter()
            .map(|(n, v)| n.len() + v.len())
            .sum();
        assert!(bytes <= 512);
    }
}
