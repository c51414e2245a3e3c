//! `request-options`: the timeouts a guest asks for, immutable once attached to a
//! request (0.3), and how the host cuts them to its own maximum.

use std::time::Duration;

/// The timeouts of one outgoing request as the guest set them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestOptions {
    /// TCP connect (and queueing for a connection).
    pub connect_timeout: Option<Duration>,
    /// From sending the request to the response head.
    pub first_byte_timeout: Option<Duration>,
    /// Between two frames of the response body.
    pub between_bytes_timeout: Option<Duration>,
}

/// Why a `request-options` setter failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OptionsError {
    /// The options belong to a request (or are a copy returned by one).
    Immutable,
}

/// The timeouts in force for one request: the guest's where it set them (cut to
/// the host's maximum), the host's defaults elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// TCP connect and queue wait.
    pub connect: Duration,
    /// First byte of the response head.
    pub first_byte: Duration,
    /// Between response body frames.
    pub between_bytes: Duration,
}

impl Timeouts {
    /// Timeouts from their three values.
    pub fn new(connect: Duration, first_byte: Duration, between_bytes: Duration) -> Self {
        Timeouts {
            connect,
            first_byte,
            between_bytes,
        }
    }
}

impl RequestOptions {
    /// The timeouts for a request with these options: `defaults` where the guest
    /// set none, the guest's values cut to `max` elsewhere, so a guest cannot hold
    /// host resources for longer than the host allows.
    pub fn resolve(&self, defaults: Timeouts, max: Duration) -> Timeouts {
        let pick = |t: Option<Duration>, default| t.map_or(default, |t: Duration| t.min(max));
        Timeouts {
            connect: pick(self.connect_timeout, defaults.connect),
            first_byte: pick(self.first_byte_timeout, defaults.first_byte),
            between_bytes: pick(self.between_bytes_timeout, defaults.between_bytes),
        }
    }
}

/// The host side of a `request-options` resource: the options and whether the
/// guest may still change them.
#[derive(Debug, Clone)]
pub struct HostRequestOptions {
    options: RequestOptions,
    mutable: bool,
}

impl Default for HostRequestOptions {
    fn default() -> Self {
        HostRequestOptions {
            options: RequestOptions::default(),
            mutable: true,
        }
    }
}

/// Which timeout a `request-options` accessor is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// `connect-timeout`.
    Connect,
    /// `first-byte-timeout`.
    FirstByte,
    /// `between-bytes-timeout`.
    BetweenBytes,
}

impl HostRequestOptions {
    /// The options.
    pub fn options(&self) -> &RequestOptions {
        &self.options
    }

    /// A copy the guest cannot change (what a request's `get-options` returns, and
    /// what a request keeps of the options it was made with).
    pub fn immutable_copy(&self) -> Self {
        HostRequestOptions {
            options: self.options.clone(),
            mutable: false,
        }
    }

    /// A copy the guest may change (`clone`).
    pub fn mutable_copy(&self) -> Self {
        HostRequestOptions {
            options: self.options.clone(),
            mutable: true,
        }
    }

    fn slot(&mut self, which: Timeout) -> &mut Option<Duration> {
        match which {
            Timeout::Connect => &mut self.options.connect_timeout,
            Timeout::FirstByte => &mut self.options.first_byte_timeout,
            Timeout::BetweenBytes => &mut self.options.between_bytes_timeout,
        }
    }

    /// A timeout in nanoseconds, as the WIT's `duration`.
    pub fn get(&mut self, which: Timeout) -> Option<u64> {
        self.slot(which)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    /// Sets a timeout given in nanoseconds.
    pub fn set(&mut self, which: Timeout, nanos: Option<u64>) -> Result<(), OptionsError> {
        if !self.mutable {
            return Err(OptionsError::Immutable);
        }
        *self.slot(which) = nanos.map(Duration::from_nanos);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_timeouts_are_cut_to_the_maximum_and_defaults_fill_the_rest() {
        let defaults = Timeouts::new(
            Duration::from_secs(10),
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        let options = RequestOptions {
            connect_timeout: Some(Duration::from_secs(3600)),
            between_bytes_timeout: Some(Duration::from_millis(5)),
            ..RequestOptions::default()
        };
        let t = options.resolve(defaults, Duration::from_secs(600));
        assert_eq!(t.connect, Duration::from_secs(600));
        assert_eq!(t.first_byte, Duration::from_secs(60));
        assert_eq!(t.between_bytes, Duration::from_millis(5));
    }

    #[test]
    fn attached_options_are_immutable() {
        let mut o = HostRequestOptions::default();
        o.set(Timeout::Connect, Some(5)).unwrap();
        let mut frozen = o.immutable_copy();
        assert_eq!(
            frozen.set(Timeout::Connect, None),
            Err(OptionsError::Immutable)
        );
        assert_eq!(frozen.get(Timeout::Connect), Some(5));
        let mut thawed = frozen.mutable_copy();
        thawed.set(Timeout::FirstByte, Some(7)).unwrap();
        assert_eq!(thawed.get(Timeout::FirstByte), Some(7));
    }
}
