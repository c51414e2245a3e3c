//! HTTP/2 frames written by hand, for tests of what a well-behaved client never
//! sends: header blocks trickled a byte at a time, requests without
//! `:authority`. Header blocks are HPACK literals without indexing or Huffman
//! coding (RFC 7541 §6.2.2), which every decoder accepts.

use super::*;

/// The connection preface and an empty SETTINGS frame.
pub fn h2_preface() -> Vec<u8> {
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend(h2_frame(0x4, 0, 0, &[]));
    bytes
}

/// One frame: `kind` (0x1 HEADERS, 0x4 SETTINGS, ...), `flags` (0x1 END_STREAM,
/// 0x4 END_HEADERS), the stream and the payload.
pub fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("frame size");
    let mut frame = len.to_be_bytes()[1..].to_vec();
    frame.push(kind);
    frame.push(flags);
    frame.extend((stream & 0x7fff_ffff).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// A HEADERS frame ending its block and its stream, with these fields (pseudo
/// fields first, as given).
pub fn h2_headers(stream: u32, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in fields {
        block.push(0);
        for s in [name, value] {
            assert!(s.len() < 127, "short fields only");
            block.push(s.len() as u8);
            block.extend_from_slice(s.as_bytes());
        }
    }
    h2_frame(0x1, 0x5, stream, &block)
}

/// Reads frames until one of `kind` on `stream` (or the connection's end:
/// `None`), returning its flags and payload. A GOAWAY ends the read too.
pub async fn h2_read_until(conn: &mut TcpStream, stream: u32, kind: u8) -> Option<(u8, Vec<u8>)> {
    loop {
        let mut head = [0u8; 9];
        conn.read_exact(&mut head).await.ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0; len];
        conn.read_exact(&mut payload).await.ok()?;
        let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        if head[3] == 0x7 {
            return None;
        }
        if head[3] == kind && id == stream {
            return Some((head[4], payload));
        }
    }
}

/// The `:status` of a response HEADERS payload from hyper, which encodes the
/// common statuses as static-table indexes (RFC 7541 Appendix A).
pub fn h2_status(block: &[u8]) -> Option<u16> {
    match block.first()? {
        0x88 => Some(200),
        0x89 => Some(204),
        0x8a => Some(206),
        0x8b => Some(304),
        0x8c => Some(400),
        0x8d => Some(404),
        0x8e => Some(500),
        _ => None,
    }
}
