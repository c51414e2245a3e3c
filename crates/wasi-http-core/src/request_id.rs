//! Request ids: unique within a process, different across restarts.

use std::sync::Arc;

/// A per-process random prefix (so ids from restarts differ) and a counter, e.g.
/// `1f0c9a3e-42`.
pub fn next_request_id() -> Arc<str> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 4];
        // Falls back to the clock if the OS has no randomness to give.
        if getrandom::fill(&mut bytes).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            bytes = nanos.to_le_bytes();
        }
        u32::from_le_bytes(bytes)
    });
    // Written by hand, not `format!`: this runs for every request.
    let mut text = [0u8; 8 + 1 + 20];
    for (i, byte) in text[..8].iter_mut().enumerate() {
        *byte = b"0123456789abcdef"[(prefix >> (28 - 4 * i) & 0xf) as usize];
    }
    text[8] = b'-';
    let mut number = itoa::Buffer::new();
    let number = number.format(NEXT.fetch_add(1, Ordering::Relaxed));
    let len = 9 + number.len();
    text[9..len].copy_from_slice(number.as_bytes());
    // Hex digits, a dash and decimal digits: always UTF-8.
    std::str::from_utf8(&text[..len]).map_or_else(|_| Arc::from(""), Arc::from)
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_a_process_prefix_and_a_counter() {
        let a = super::next_request_id();
        let b = super::next_request_id();
        let (prefix_a, n_a) = a.split_once('-').unwrap();
        let (prefix_b, n_b) = b.split_once('-').unwrap();
        assert_eq!(prefix_a.len(), 8);
        assert!(prefix_a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(prefix_a, prefix_b);
        assert!(n_b.parse::<u64>().unwrap() > n_a.parse::<u64>().unwrap());
    }
}
