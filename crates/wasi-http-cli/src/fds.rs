//! File descriptors: the soft limit raised to the hard one, and the main
//! listener's connections kept below it, so that a server full of clients still
//! has descriptors for its metrics listener, its component files and its
//! outgoing connections (and `accept` fails before they run out).

/// Descriptors kept for everything but client connections: stdio, the engine,
/// listeners, the cache, log files, outgoing connections of a quiet server.
const RESERVED: u64 = 64;

/// `configured` client connections, or fewer when the descriptor limit (raised
/// first, if it can be) would not leave [`RESERVED`] ones, plus the metrics
/// listener's, free; logs the cut and how to avoid it.
pub(crate) fn max_connections(configured: usize, metrics: bool) -> usize {
    let Some(limit) = raise_limit() else {
        return configured;
    };
    let reserved = RESERVED
        + if metrics {
            wasi_http_server::METRICS_MAX_CONNECTIONS as u64 + 1
        } else {
            0
        };
    let room = usize::try_from(limit.saturating_sub(reserved).max(16)).unwrap_or(usize::MAX);
    if configured <= room {
        return configured;
    }
    tracing::warn!(
        "--max-connections {configured} does not fit the file descriptor limit ({limit}, \
         {reserved} kept for other files); serving at most {room} connections: raise the \
         limit (`ulimit -n`, LimitNOFILE= in systemd) or lower --max-connections"
    );
    room
}

/// The soft `RLIMIT_NOFILE`, raised to the hard one first (as most servers do:
/// the soft default of 1024 is a legacy of `select`). `None`: no limit known.
#[cfg(unix)]
fn raise_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => limit = raised,
            Err(e) => tracing::debug!(error = %e, "cannot raise the file descriptor limit"),
        }
    }
    limit.current
}

#[cfg(not(unix))]
fn raise_limit() -> Option<u64> {
    None
}
