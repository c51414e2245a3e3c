//! Parsers of setting values, shared by the command line and the settings file.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// A duration: a whole number with unit `ms`, `s` (the default) or `m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = split_number(s);
    let n: u64 = num.parse().map_err(|_| format!("invalid duration `{s}`"))?;
    let secs = |mult: u64| {
        n.checked_mul(mult)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("duration `{s}` too long"))
    };
    match unit {
        "" | "s" => secs(1),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => secs(60),
        _ => Err(format!("invalid duration unit in `{s}` (use ms, s or m)")),
    }
}

/// A byte count: a whole number with unit `B` (the default), `KiB`, `MiB` or
/// `GiB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = split_number(s);
    let n: u64 = num.parse().map_err(|_| format!("invalid size `{s}`"))?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid size unit in `{s}` (use B, KiB, MiB or GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size `{s}` too large"))
}

/// A size of linear memory: at most wasm32's 4 GiB.
pub fn parse_memory(s: &str) -> Result<usize, String> {
    let bytes = parse_size(s)?;
    if bytes > 4 << 30 {
        return Err(format!("size `{s}` exceeds wasm32's 4GiB"));
    }
    usize::try_from(bytes).map_err(|_| format!("size `{s}` too large for this machine"))
}

/// A DNS server: `IP` (port 53) or `IP:PORT`.
pub fn parse_dns_server(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("invalid DNS server `{s}` (use IP or IP:PORT)"))
}

/// The leading digits and the rest.
fn split_number(s: &str) -> (&str, &str) {
    s.find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration(" 2m "), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        for bad in ["", "s", "-1s", "1h", "1.5s", "99999999999999999999m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        // Past u64 seconds once in minutes: an error, not an overflow.
        assert!(parse_duration(&format!("{}m", u64::MAX / 2)).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("3"), Ok(3));
        assert!(parse_size(&format!("{}GiB", u64::MAX / 2)).is_err());
        assert!(parse_size("1KB").is_err());
        assert_eq!(parse_memory("4GiB"), Ok(4 << 30));
        assert!(parse_memory("5GiB").is_err());
    }
}
