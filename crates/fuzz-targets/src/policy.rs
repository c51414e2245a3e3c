//! The outbound policy: destination rules parsed from arbitrary text and matched
//! against arbitrary URLs, and the blocked-network check on resolved addresses
//! (every IPv6 form that carries an IPv4 address, every numeric spelling of an
//! IPv4 host). Holds: `wasi-http serve`'s default policy never lets a connection
//! go to an address that is internal, directly or through a carried IPv4
//! address, however the host was spelled.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use arbitrary::{Arbitrary, Unstructured};
use wasi_http_client::{DestinationRule, OutboundPolicy};

#[derive(Arbitrary, Debug)]
enum Address {
    V4([u8; 4]),
    V6([u8; 16]),
    /// An IPv4 address carried in an IPv6 one, by this form.
    Carried([u8; 4], u8, [u8; 8]),
    /// A host name the system resolver reads as an IPv4 address.
    Spelled(String),
}

#[derive(Arbitrary, Debug)]
struct Input {
    rules: Vec<String>,
    https: bool,
    host: String,
    port: u16,
    addresses: Vec<Address>,
}

/// Internal IPv4 networks, written out independently of the code under test.
fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b))
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
}

/// An IPv6 address carrying `v4` by one of the standard forms.
fn carry(v4: [u8; 4], form: u8, fill: [u8; 8]) -> Ipv6Addr {
    let mut o = [0u8; 16];
    match form % 6 {
        0 => o[10..12].copy_from_slice(&[0xff, 0xff]), // mapped
        1 => {}                                        // compatible
        2 => o[..4].copy_from_slice(&[0, 0x64, 0xff, 0x9b]), // NAT64 /96
        3 => {
            // NAT64 local-use /48: v4 around the skipped octet 8
            o[..6].copy_from_slice(&[0, 0x64, 0xff, 0x9b, 0, 1]);
            o[6..8].copy_from_slice(&v4[..2]);
            o[9..11].copy_from_slice(&v4[2..]);
            o[11..].copy_from_slice(&fill[..5]);
            return Ipv6Addr::from(o);
        }
        4 => {
            // 6to4
            o[..2].copy_from_slice(&[0x20, 0x02]);
            o[2..6].copy_from_slice(&v4);
            o[6..14].copy_from_slice(&fill);
            return Ipv6Addr::from(o);
        }
        _ => {
            // Teredo client (inverted)
            o[..4].copy_from_slice(&[0x20, 0x01, 0, 0]);
            o[4..12].copy_from_slice(&fill);
            for (i, b) in v4.iter().enumerate() {
                o[12 + i] = !b;
            }
            return Ipv6Addr::from(o);
        }
    }
    o[12..].copy_from_slice(&v4);
    Ipv6Addr::from(o)
}

/// What glibc's `inet_aton` (and so the system resolver) reads as an IPv4
/// address: one to four parts, each decimal, octal (leading 0) or hex (0x).
fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(4);
    for p in &parts {
        let n = if let Some(hex) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            if hex.is_empty() {
                0
            } else {
                u32::from_str_radix(hex, 16).ok()?
            }
        } else if p.len() > 1 && p.starts_with('0') {
            u32::from_str_radix(&p[1..], 8).ok()?
        } else {
            p.parse::<u32>().ok()?
        };
        nums.push(n);
    }
    let (last, head) = nums.split_last()?;
    if head.iter().any(|&n| n > 255) {
        return None;
    }
    let bits = 32 - 8 * head.len() as u32;
    if bits < 32 && *last >> bits != 0 {
        return None;
    }
    let mut v = *last;
    for (i, &n) in head.iter().enumerate() {
        v |= n << (24 - 8 * i as u32);
    }
    Some(Ipv4Addr::from(v))
}

/// The target.
pub fn run(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut policy = OutboundPolicy::internal_blocked();
    for rule in &input.rules {
        if let Ok(rule) = rule.parse::<DestinationRule>() {
            let _ = rule.matches(input.https, &input.host, input.port);
            policy.allow.push(rule);
        }
    }
    let allowed = policy.allows_destination(input.https, &input.host, input.port);
    let expected = policy.allow.is_empty()
        || policy
            .allow
            .iter()
            .any(|r| r.matches(input.https, &input.host, input.port));
    assert_eq!(allowed, expected);

    let mut resolved = Vec::new();
    let mut internal = Vec::new();
    for address in input.addresses {
        let (ip, is_internal) = match address {
            Address::V4(o) => (IpAddr::from(o), internal_v4(Ipv4Addr::from(o))),
            Address::V6(o) => {
                let v6 = Ipv6Addr::from(o);
                (IpAddr::V6(v6), internal_v6(v6))
            }
            Address::Carried(v4, form, fill) => {
                let v6 = carry(v4, form, fill);
                (
                    IpAddr::V6(v6),
                    internal_v4(Ipv4Addr::from(v4)) || internal_v6(v6),
                )
            }
            Address::Spelled(host) => match inet_aton(&host) {
                Some(v4) => (IpAddr::V4(v4), internal_v4(v4)),
                None => continue,
            },
        };
        resolved.push(SocketAddr::new(ip, input.port));
        internal.push((ip, is_internal));
    }
    match policy.permitted(resolved.iter().copied()) {
        Ok(permitted) => {
            for addr in &permitted {
                let is_internal = internal.iter().any(|(ip, bad)| *ip == addr.ip() && *bad);
                assert!(!is_internal, "an internal address was permitted: {addr}");
            }
            assert!(
                !permitted.is_empty() || resolved.is_empty(),
                "addresses were dropped without an error"
            );
        }
        Err((ip, _)) => {
            assert!(resolved.iter().any(|a| a.ip() == ip));
        }
    }
}
