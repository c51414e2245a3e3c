//! Background expiry for things kept idle for reuse (pooled connections, reusable
//! instances): one task per owner, holding only a weak reference, so it ends with it.

use std::sync::{Arc, Weak};
use std::time::Duration;

/// Calls `expire` on `owner` every `idle_timeout / 2` (between 50 ms and 5 s) for as
/// long as `owner` is alive. Needs a Tokio runtime.
pub fn spawn<T: Send + Sync + 'static>(owner: Weak<T>, idle_timeout: Duration, expire: fn(&T)) {
    let period = (idle_timeout / 2).clamp(Duration::from_millis(50), Duration::from_secs(5));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match owner.upgrade() {
                Some(owner) => expire(&owner),
                None => return,
            }
        }
    });
}

/// An owner's reaper is started at most once, on first use (which runs on a runtime).
pub struct Once(std::sync::Once);

impl Default for Once {
    fn default() -> Self {
        Once::new()
    }
}

impl Once {
    /// Not started yet.
    pub const fn new() -> Self {
        Once(std::sync::Once::new())
    }

    /// Starts `owner`'s reaper (see [`spawn`]) unless it already runs.
    pub fn start<T: Send + Sync + 'static>(
        &self,
        owner: &Arc<T>,
        idle_timeout: Duration,
        expire: fn(&T),
    ) {
        self.0
            .call_once(|| spawn(Arc::downgrade(owner), idle_timeout, expire));
    }
}
