//! Resource limits that bound what a guest (or a peer) can make the host hold.

/// Limits applied by the `wasi:http` host to every store it serves.
///
/// Defaults are chosen for production: generous for real traffic, small enough that a
/// guest cannot make the host buffer unbounded memory.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Limits {
    /// Most bytes (names plus values) one `fields` resource may hold. An operation that
    /// would exceed it fails with `header-error.size-exceeded` (0.2: `forbidden`); an incoming message over it
    /// is rejected before the guest runs. Default: 64 KiB.
    pub max_field_bytes: usize,
    /// Most entries one `fields` resource may hold. Default: 256.
    pub max_field_count: usize,
    /// Most bytes one `output-stream.write` on a body may carry, reported by
    /// `check-write`. Default: 256 KiB.
    pub body_write_chunk: usize,
    /// How much an outgoing body may buffer, in chunks of `body_write_chunk` bytes:
    /// once `body_write_chunk * body_buffer_chunks` bytes wait to be sent, however
    /// the guest split its writes, `check-write` returns 0 (backpressure). Default: 2.
    pub body_buffer_chunks: usize,
    /// Most bytes one `input-stream.read` on a body returns. Default: 256 KiB.
    pub body_read_chunk: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_field_bytes: 64 * 1024,
            max_field_count: 256,
            body_write_chunk: 256 * 1024,
            body_buffer_chunks: 2,
            body_read_chunk: 256 * 1024,
        }
    }
}

impl Limits {
    /// Sanitised copy: zero values would make bodies unusable, so they are raised to 1.
    pub fn normalized(mut self) -> Self {
        self.body_write_chunk = self.body_write_chunk.max(1);
        self.body_buffer_chunks = self.body_buffer_chunks.max(1);
        self.body_read_chunk = self.body_read_chunk.max(1);
        self
    }
}
