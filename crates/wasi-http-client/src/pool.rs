//! Keep-alive connection reuse for the default client.
//!
//! HTTP/1.1 connections go back to the pool only after their response body was read to
//! the end; a body dropped early (or failed) takes its connection with it, so a guest
//! can never hand the next request a connection with unread bytes on it. An HTTP/2
//! connection is shared by all requests to its destination while it stays open.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use hyper::client::conn::{http1, http2};
use wasi_http_core::body::{BodyEnd, BodyWatch, Watched};
use wasi_http_core::{from_hyper_response_error, ErrorCode, HostBody};

/// A destination: connections are only ever shared between requests with equal keys,
/// and a pool belongs to one client (one TLS configuration).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    pub(crate) tls: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// A connection ready for a request.
pub(crate) enum Sender {
    H1(http1::SendRequest<HostBody>),
    H2(http2::SendRequest<HostBody>),
}

struct HostConns {
    idle: Vec<(http1::SendRequest<HostBody>, Instant)>,
    h2: Option<http2::SendRequest<HostBody>>,
    /// One permit per open connection to this destination.
    open: Arc<Semaphore>,
    /// Held while connecting to a destination known to speak HTTP/2, so concurrent
    /// requests share the one connection instead of each opening their own.
    h2_gate: Arc<tokio::sync::Mutex<()>>,
    speaks_h2: bool,
}

pub(crate) struct Pool {
    hosts: Mutex<HashMap<PoolKey, HostConns>>,
    idle_timeout: Duration,
    max_idle_per_host: usize,
    max_per_host: usize,
    /// Signalled when a connection becomes idle or closes, for queued requests.
    changed: Arc<Notify>,
    /// Connections open (permits out), for metrics.
    open: Arc<AtomicU64>,
}

/// The right to keep one connection open; released (and waiters woken) when the
/// connection's task ends.
pub(crate) struct ConnPermit {
    permit: Option<OwnedSemaphorePermit>,
    changed: Arc<Notify>,
    open: Arc<AtomicU64>,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }
}

/// What a request gets from the pool.
pub(crate) enum Acquired {
    /// A pooled connection.
    Pooled(Sender),
    /// Room to open a new connection.
    New(ConnPermit),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool {
    pub(crate) fn new(
        idle_timeout: Duration,
        max_idle_per_host: usize,
        max_per_host: usize,
    ) -> Self {
        Pool {
            hosts: Mutex::new(HashMap::new()),
            idle_timeout,
            max_idle_per_host,
            max_per_host: max_per_host.max(1),
            changed: Arc::new(Notify::new()),
            open: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Connections open now, and how many of them wait idle in the pool.
    pub(crate) fn counts(&self) -> (u64, u64) {
        let idle = lock(&self.hosts)
            .values()
            .map(|conns| conns.idle.len() as u64)
            .sum();
        (self.open.load(Ordering::Relaxed), idle)
    }

    fn host<'a>(
        &self,
        hosts: &'a mut HashMap<PoolKey, HostConns>,
        key: &PoolKey,
    ) -> &'a mut HostConns {
        if !hosts.contains_key(key) {
            // A guest can name endless destinations: forget the ones that hold nothing
            // before remembering another, so the map stays as small as what is in use.
            let now = Instant::now();
            hosts.retain(|_, conns| !self.unused(conns, now));
        }
        hosts.entry(key.clone()).or_insert_with(|| HostConns {
            idle: Vec::new(),
            h2: None,
            open: Arc::new(Semaphore::new(self.max_per_host)),
            h2_gate: Arc::new(tokio::sync::Mutex::new(())),
            speaks_h2: false,
        })
    }

    /// No usable connection, none open (every permit back), nobody connecting.
    fn unused(&self, conns: &mut HostConns, now: Instant) -> bool {
        conns
            .idle
            .retain(|(s, since)| !s.is_closed() && now - *since < self.idle_timeout);
        if conns.h2.as_ref().is_some_and(|h2| h2.is_closed()) {
            conns.h2 = None;
        }
        conns.idle.is_empty()
            && conns.h2.is_none()
            && conns.open.available_permits() == self.max_per_host
            && Arc::strong_count(&conns.h2_gate) == 1
    }

    /// How long idle connections are kept.
    pub(crate) fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// Closes expired idle connections and forgets destinations that hold nothing.
    pub(crate) fn reap(&self) {
        let now = Instant::now();
        lock(&self.hosts).retain(|_, conns| !self.unused(conns, now));
    }

    /// Destinations the pool remembers.
    #[cfg(test)]
    fn destinations(&self) -> usize {
        lock(&self.hosts).len()
    }

    /// The connect gate of `key`, if it is known (or configured) to speak HTTP/2.
    pub(crate) fn h2_gate(&self, key: &PoolKey, h2c: bool) -> Option<Arc<tokio::sync::Mutex<()>>> {
        let mut hosts = lock(&self.hosts);
        let conns = self.host(&mut hosts, key);
        (h2c || conns.speaks_h2).then(|| conns.h2_gate.clone())
    }

    /// A pooled connection, or room for a new one; waits (queued) until `deadline`
    /// while the destination is at its connection limit.
    pub(crate) async fn acquire(
        &self,
        key: &PoolKey,
        deadline: tokio::time::Instant,
    ) -> Option<Acquired> {
        loop {
            // Registered before looking, so a connection freed meanwhile wakes us.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(sender) = self.checkout(key).await {
                return Some(Acquired::Pooled(sender));
            }
            let open = self.host(&mut lock(&self.hosts), key).open.clone();
            if let Ok(permit) = open.try_acquire_owned() {
                self.open.fetch_add(1, Ordering::Relaxed);
                return Some(Acquired::New(ConnPermit {
                    permit: Some(permit),
                    changed: self.changed.clone(),
                    open: self.open.clone(),
                }));
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return None;
            }
        }
    }

    /// A pooled connection to `key`, if one is open and usable.
    pub(crate) async fn checkout(&self, key: &PoolKey) -> Option<Sender> {
        loop {
            let candidate = {
                let mut hosts = lock(&self.hosts);
                let conns = hosts.get_mut(key)?;
                if let Some(h2) = &conns.h2 {
                    if !h2.is_closed() {
                        return Some(Sender::H2(h2.clone()));
                    }
                    conns.h2 = None;
                }
                let now = Instant::now();
                conns
                    .idle
                    .retain(|(s, since)| !s.is_closed() && now - *since < self.idle_timeout);
                conns.idle.pop()?.0
            };
            let mut sender = candidate;
            // A connection whose previous exchange is done becomes ready at once; one
            // that is not is dropped rather than waited for.
            match tokio::time::timeout(Duration::from_millis(1), sender.ready()).await {
                Ok(Ok(())) => return Some(Sender::H1(sender)),
                _ => continue,
            }
        }
    }

    /// Shares a new HTTP/2 connection for later requests to `key`.
    pub(crate) fn put_h2(&self, key: &PoolKey, sender: http2::SendRequest<HostBody>) {
        let mut hosts = lock(&self.hosts);
        let conns = self.host(&mut hosts, key);
        conns.h2 = Some(sender);
        conns.speaks_h2 = true;
        drop(hosts);
        self.changed.notify_waiters();
    }

    /// Returns an HTTP/1.1 connection whose response was read completely.
    fn put_idle(&self, key: PoolKey, sender: http1::SendRequest<HostBody>) {
        if sender.is_closed() {
            return;
        }
        let mut hosts = lock(&self.hosts);
        let conns = self.host(&mut hosts, &key);
        let now = Instant::now();
        conns
            .idle
            .retain(|(s, since)| !s.is_closed() && now - *since < self.idle_timeout);
        if conns.idle.len() < self.max_idle_per_host {
            conns.idle.push((sender, now));
        }
        drop(hosts);
        self.changed.notify_waiters();
    }
}

/// An HTTP/1.1 response body that returns its connection to the pool at its end.
pub(crate) type PooledBody = Watched<ResponseBody, ReturnToPool>;

/// hyper's response body with its errors mapped to error codes.
pub(crate) type ResponseBody =
    http_body_util::combinators::MapErr<hyper::body::Incoming, fn(hyper::Error) -> ErrorCode>;

fn response_error(e: hyper::Error) -> ErrorCode {
    from_hyper_response_error(&e)
}

/// Gives the connection back once its response body was read to the end; a body
/// that failed or was dropped early takes its connection with it.
pub(crate) struct ReturnToPool(Option<(Arc<Pool>, PoolKey, http1::SendRequest<HostBody>)>);

impl BodyWatch for ReturnToPool {
    fn end(&mut self, end: BodyEnd<'_>) {
        if let (BodyEnd::Complete, Some((pool, key, sender))) = (end, self.0.take()) {
            pool.put_idle(key, sender);
        }
    }
}

/// A pooled response body: the connection goes back to `pool` at the body's end.
pub(crate) fn pooled_body(
    inner: hyper::body::Incoming,
    pool: Arc<Pool>,
    key: PoolKey,
    sender: http1::SendRequest<HostBody>,
) -> PooledBody {
    use http_body::Body as _;
    use http_body_util::BodyExt as _;
    // An empty body is already complete: the connection is free at once, even if
    // the guest never reads the body.
    let ret = if inner.is_end_stream() {
        pool.put_idle(key, sender);
        None
    } else {
        Some((pool, key, sender))
    };
    let inner = inner.map_err(response_error as fn(hyper::Error) -> ErrorCode);
    Watched::new(inner, ReturnToPool(ret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn destinations_that_hold_nothing_are_forgotten() {
        let pool = Pool::new(Duration::from_secs(90), 8, 4);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        let key = |port| PoolKey {
            tls: false,
            host: "192.0.2.1".into(),
            port,
        };
        // A connection attempt per port, each failing (its permit dropped).
        for port in 1..=1000 {
            let acquired = pool.acquire(&key(port), deadline).await;
            assert!(matches!(acquired, Some(Acquired::New(_))));
        }
        assert!(
            pool.destinations() <= 1,
            "{} remembered",
            pool.destinations()
        );
        // One still holding an open-connection permit is kept, with its limit.
        let held = pool.acquire(&key(1), deadline).await;
        pool.acquire(&key(2), deadline).await;
        assert_eq!(pool.destinations(), 2);
        drop(held);
        pool.acquire(&key(3), deadline).await;
        assert_eq!(pool.destinations(), 1);
    }
}
