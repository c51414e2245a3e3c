//! `fields` as a guest drives it: `from-list`, then any sequence of `set`,
//! `append`, `get-and-delete`, `get`, `has`, `entries` and copies, under small
//! limits. Holds: the limits are never exceeded, a failed operation changes
//! nothing, immutable fields never change, forbidden names never get in.

use arbitrary::{Arbitrary, Unstructured};
use wasi_http_core::{FieldError, Fields, Limits, NoOutbound};

#[derive(Arbitrary, Debug)]
enum Op {
    Set(String, Vec<Vec<u8>>),
    Append(String, Vec<u8>),
    Delete(String),
    Get(String),
    Has(String),
    MutableCopy,
    ImmutableCopy,
}

#[derive(Arbitrary, Debug)]
struct Input {
    max_bytes: u16,
    max_count: u8,
    initial: Vec<(String, Vec<u8>)>,
    ops: Vec<Op>,
}

/// The target.
pub fn run(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut limits = Limits::default();
    limits.max_field_bytes = usize::from(input.max_bytes);
    limits.max_field_count = usize::from(input.max_count);
    let hooks = NoOutbound;
    let mut fields =
        Fields::from_list(input.initial, &limits, &hooks).unwrap_or_else(|_| Fields::new_mutable());
    check(&fields, &limits);
    for op in input.ops {
        let before = fields.entries();
        let mutable = fields.is_mutable();
        let changes = matches!(op, Op::Set(..) | Op::Append(..) | Op::Delete(_));
        let result: Result<(), FieldError> = match op {
            Op::Set(name, values) => fields.set(&name, values, &limits, &hooks),
            Op::Append(name, value) => fields.append(&name, value, &limits, &hooks),
            Op::Delete(name) => fields.delete(&name, &hooks).map(|_| ()),
            Op::Get(name) => {
                let values = fields.get(&name);
                let expected: Vec<Vec<u8>> = before
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(&name))
                    .map(|(_, v)| v.clone())
                    .collect();
                assert_eq!(
                    values, expected,
                    "get returns exactly the entries of a name"
                );
                assert_eq!(fields.has(&name), !expected.is_empty());
                Ok(())
            }
            Op::Has(name) => {
                let _ = fields.has(&name);
                Ok(())
            }
            Op::MutableCopy => {
                fields = fields.mutable_copy();
                assert!(fields.is_mutable());
                Ok(())
            }
            Op::ImmutableCopy => {
                fields = fields.immutable_copy();
                assert!(!fields.is_mutable());
                Ok(())
            }
        };
        if changes && !mutable {
            assert_eq!(result, Err(FieldError::Immutable));
        }
        if result.is_err() {
            assert_eq!(
                fields.entries(),
                before,
                "a failed operation changes nothing"
            );
        }
        check(&fields, &limits);
    }
}

fn check(fields: &Fields, limits: &Limits) {
    let entries = fields.entries();
    assert!(
        entries.len() <= limits.max_field_count,
        "count over the limit"
    );
    let bytes: usize = entries.iter().map(|(n, v)| n.len() + v.len()).sum();
    assert!(bytes <= limits.max_field_bytes, "bytes over the limit");
    for (name, _) in &entries {
        let name = http::HeaderName::from_bytes(name.as_bytes()).expect("entries are valid names");
        assert!(
            !wasi_http_core::headers::is_default_forbidden(&name),
            "a forbidden name got in: {name}"
        );
    }
}
