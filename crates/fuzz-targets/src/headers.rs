//! Header parsing the host relies on: `content-length` (one value, a list, or
//! repeated headers), merging duplicates, stripping connection headers, the
//! `trailer` declaration. Holds: the declared length is exactly what a strict
//! reading of the values gives (`1*DIGIT`, all equal, within u64).

use arbitrary::{Arbitrary, Unstructured};
use http::{HeaderMap, HeaderName, HeaderValue};
use wasi_http_core::headers;

#[derive(Arbitrary, Debug)]
struct Input {
    entries: Vec<(String, Vec<u8>)>,
    lengths: Vec<Vec<u8>>,
}

/// The strict reading, written independently of the code under test.
fn reference(values: &[&[u8]]) -> Result<Option<u64>, ()> {
    let mut found: Option<u64> = None;
    for value in values {
        for part in value.split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return Err(());
            }
            let n: u64 = std::str::from_utf8(part)
                .map_err(|_| ())?
                .parse()
                .map_err(|_| ())?;
            if found.is_some_and(|f| f != n) {
                return Err(());
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// The target.
pub fn run(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut map = HeaderMap::new();
    for (name, value) in &input.entries {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    for value in &input.lengths {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            let single = headers::parse_content_length(&value);
            let strict = reference(&[value.as_bytes()]);
            if !value.as_bytes().contains(&b',') {
                assert_eq!(single.ok(), strict.ok().flatten(), "{value:?}");
            }
            map.append(http::header::CONTENT_LENGTH, value);
        }
    }
    let values: Vec<&[u8]> = map
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    let expected = reference(&values);
    let declared = headers::content_length(&map);
    assert_eq!(declared.ok(), expected.ok(), "{values:?}");
    let mut merged = map.clone();
    match headers::merge_content_length(&mut merged) {
        Ok(()) => {
            assert_eq!(
                headers::content_length(&merged).ok(),
                Some(expected.ok().flatten())
            );
            let n = merged.get_all(http::header::CONTENT_LENGTH).iter().count();
            assert!(n <= 1 || expected.is_err(), "merged to one value");
        }
        Err(_) => assert!(expected.is_err()),
    }
    let mut stripped = map.clone();
    headers::strip_connection_headers(&mut stripped);
    for name in headers::CONNECTION_HEADERS {
        assert!(!stripped.contains_key(*name), "{name} left");
    }
    let _ = headers::declared_trailers(&map);
}
