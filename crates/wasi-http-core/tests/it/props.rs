use std::pin::Pin;

use bytes::Bytes;
use http_body::Body;
use proptest::prelude::*;
use wasi_http_core::body::{channel_of, Direction};
use wasi_http_core::{ErrorCode, Fields, Limits, NoOutbound};

#[derive(Debug, Clone)]
enum FieldOp {
    Set(String, Vec<Vec<u8>>),
    Append(String, Vec<u8>),
    Delete(String),
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,12}",
        Just("host".to_owned()),
        Just("x-a".to_owned()),
        Just("X-A".to_owned()),
        ".{0,4}",
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..40)
}

fn op() -> impl Strategy<Value = FieldOp> {
    prop_oneof![
        (name(), prop::collection::vec(value(), 0..4)).prop_map(|(n, v)| FieldOp::Set(n, v)),
        (name(), value()).prop_map(|(n, v)| FieldOp::Append(n, v)),
        name().prop_map(FieldOp::Delete),
    ]
}

proptest! {
    /// Fields never hold more than their limits, whatever a guest does.
    #[test]
    fn fields_never_exceed_their_limits(
        max_bytes in 0usize..300,
        max_count in 0usize..12,
        initial in prop::collection::vec((name(), value()), 0..8),
        ops in prop::collection::vec(op(), 0..40),
    ) {
        let mut limits = Limits::default();
        limits.max_field_bytes = max_bytes;
        limits.max_field_count = max_count;
        let hooks = NoOutbound;
        let mut fields = Fields::from_list(initial, &limits, &hooks).unwrap_or_else(|_| Fields::new_mutable());
        for op in ops {
            let _ = match op {
                FieldOp::Set(n, v) => fields.set(&n, v, &limits, &hooks),
                FieldOp::Append(n, v) => fields.append(&n, v, &limits, &hooks),
                FieldOp::Delete(n) => fields.delete(&n, &hooks).map(drop),
            };
            let entries = fields.entries();
            prop_assert!(entries.len() <= max_count);
            let bytes: usize = entries.iter().map(|(n, v)| n.len() + v.len()).sum();
            prop_assert!(bytes <= max_bytes);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum End {
    Finish,
    Drop,
    Fail,
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![Just(End::Finish), Just(End::Drop), Just(End::Fail)]
}

/// Every frame of a body, and whether it ended cleanly (`None`) or failed.
fn drain(mut body: wasi_http_core::ChannelBody) -> (u64, Option<ErrorCode>) {
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut total = 0u64;
    loop {
        match Pin::new(&mut body).poll_frame(&mut cx) {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    total += data.len() as u64;
                }
            }
            std::task::Poll::Ready(Some(Err(code))) => return (total, Some(code)),
            std::task::Poll::Ready(None) => return (total, None),
            std::task::Poll::Pending => panic!("a finished writer left the body pending"),
        }
    }
}

proptest! {
    /// A body ends cleanly only when it carried exactly its declared length (and
    /// was finished); otherwise whoever reads it sees an error, never a short or
    /// long body that looks whole.
    #[test]
    fn bodies_are_never_longer_or_shorter_than_declared_without_an_error(
        declared in prop::option::of(0u64..2000),
        chunks in prop::collection::vec(0usize..400, 0..10),
        end in end(),
    ) {
        let mut limits = Limits::default();
        limits.body_write_chunk = 512;
        limits.body_buffer_chunks = 64;
        let (mut writer, body) = channel_of(&limits, declared, Direction::Response);
        let mut accepted = 0u64;
        let mut failed = false;
        for len in chunks {
            match writer.write(Bytes::from(vec![b'x'; len])) {
                Ok(()) => accepted += len as u64,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        let finished = match end {
            End::Finish if !failed => writer.finish(None).is_ok(),
            End::Fail => {
                writer.fail(ErrorCode::InternalError(None));
                false
            }
            _ => {
                drop(writer);
                false
            }
        };
        let (total, error) = drain(body);
        prop_assert!(total <= accepted);
        match error {
            None => {
                prop_assert!(finished, "a clean end needs a finish");
                prop_assert_eq!(total, accepted);
                if let Some(declared) = declared {
                    prop_assert_eq!(total, declared, "clean end with a wrong length");
                }
            }
            Some(_) => prop_assert!(!finished || declared.is_some_and(|d| d != total)),
        }
    }
}
