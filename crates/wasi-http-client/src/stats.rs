//! The client's counters: plain atomics, read by whoever exports metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use wasi_http_core::ErrorCode;

/// What an outgoing request ended in: `response`, or the WIT name of its
/// error code.
const OUTCOMES: &[&str] = &[
    "response",
    "DNS-timeout",
    "DNS-error",
    "destination-not-found",
    "destination-unavailable",
    "destination-IP-prohibited",
    "destination-IP-unroutable",
    "connection-refused",
    "connection-terminated",
    "connection-timeout",
    "connection-read-timeout",
    "connection-write-timeout",
    "connection-limit-reached",
    "TLS-protocol-error",
    "TLS-certificate-error",
    "TLS-alert-received",
    "HTTP-request-denied",
    "HTTP-request-length-required",
    "HTTP-request-body-size",
    "HTTP-request-method-invalid",
    "HTTP-request-URI-invalid",
    "HTTP-request-URI-too-long",
    "HTTP-request-header-section-size",
    "HTTP-request-header-size",
    "HTTP-request-trailer-section-size",
    "HTTP-request-trailer-size",
    "HTTP-response-incomplete",
    "HTTP-response-header-section-size",
    "HTTP-response-header-size",
    "HTTP-response-body-size",
    "HTTP-response-trailer-section-size",
    "HTTP-response-trailer-size",
    "HTTP-response-transfer-coding",
    "HTTP-response-content-coding",
    "HTTP-response-timeout",
    "HTTP-upgrade-failed",
    "HTTP-protocol-error",
    "loop-detected",
    "configuration-error",
    "internal-error",
];

/// Counters shared by a client's clones.
pub(crate) struct ClientStats {
    requests: [AtomicU64; OUTCOMES.len()],
    connections_opened: AtomicU64,
    connections_reused: AtomicU64,
}

impl Default for ClientStats {
    fn default() -> Self {
        ClientStats {
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            connections_opened: AtomicU64::new(0),
            connections_reused: AtomicU64::new(0),
        }
    }
}

/// The counters of a client at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStatsSnapshot {
    /// Outgoing requests by outcome (`response` or an error code's WIT name), only
    /// the outcomes seen so far.
    pub requests: Vec<(&'static str, u64)>,
    /// Connections opened.
    pub connections_opened: u64,
    /// Requests sent on a pooled connection.
    pub connections_reused: u64,
    /// Connections open now (in use or idle).
    pub connections_open: u64,
    /// Of those, idle in the pool.
    pub connections_idle: u64,
}

impl ClientStats {
    pub(crate) fn request_done(&self, error: Option<&ErrorCode>) {
        let name = error.map_or("response", ErrorCode::name);
        // Every error code's name is listed; an unknown one would count as internal.
        let i = OUTCOMES
            .iter()
            .position(|o| *o == name)
            .unwrap_or(OUTCOMES.len() - 1);
        self.requests[i].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_opened(&self) {
        self.connections_opened.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_reused(&self) {
        self.connections_reused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ClientStatsSnapshot {
        ClientStatsSnapshot {
            requests: OUTCOMES
                .iter()
                .zip(&self.requests)
                .map(|(name, n)| (*name, n.load(Ordering::Relaxed)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            connections_opened: self.connections_opened.load(Ordering::Relaxed),
            connections_reused: self.connections_reused.load(Ordering::Relaxed),
            connections_open: 0,
            connections_idle: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_has_an_outcome() {
        let stats = ClientStats::default();
        stats.request_done(None);
        stats.request_done(Some(&ErrorCode::ConnectionRefused));
        stats.request_done(Some(&ErrorCode::dns("NXDOMAIN")));
        let snap = stats.snapshot();
        assert_eq!(
            snap.requests,
            vec![("response", 1), ("DNS-error", 1), ("connection-refused", 1)]
        );
        assert_eq!(OUTCOMES.last(), Some(&"internal-error"));
    }
}
