//! The outbound policy, checked with proptest: an address in a blocked network is
//! never permitted, however it is written (IPv4, IPv4-mapped, IPv4-compatible,
//! NAT64, 6to4, Teredo).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;
use wasi_http_client::OutboundPolicy;

/// An address of one of the default blocked IPv4 networks.
fn internal_v4() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        any::<[u8; 3]>().prop_map(|[b, c, d]| Ipv4Addr::new(10, b, c, d)),
        any::<[u8; 3]>().prop_map(|[b, c, d]| Ipv4Addr::new(127, b, c, d)),
        any::<[u8; 2]>().prop_map(|[c, d]| Ipv4Addr::new(169, 254, c, d)),
        any::<[u8; 2]>().prop_map(|[c, d]| Ipv4Addr::new(192, 168, c, d)),
        (16u8..32, any::<[u8; 2]>()).prop_map(|(b, [c, d])| Ipv4Addr::new(172, b, c, d)),
        (64u8..128, any::<[u8; 2]>()).prop_map(|(b, [c, d])| Ipv4Addr::new(100, b, c, d)),
        any::<[u8; 3]>().prop_map(|[b, c, d]| Ipv4Addr::new(0, b, c, d)),
    ]
}

/// `v4` written as an IPv6 address by `form`, with `fill` where the form has
/// room for other bits.
fn carried(v4: Ipv4Addr, form: u8, fill: [u8; 8]) -> Ipv6Addr {
    let v = v4.octets();
    let mut o = [0u8; 16];
    match form % 6 {
        0 => return v4.to_ipv6_mapped(),
        1 => o[12..].copy_from_slice(&v),
        2 => {
            o[..4].copy_from_slice(&[0, 0x64, 0xff, 0x9b]);
            o[12..].copy_from_slice(&v);
        }
        3 => {
            o[..6].copy_from_slice(&[0, 0x64, 0xff, 0x9b, 0, 1]);
            o[9..13].copy_from_slice(&v);
            o[13..].copy_from_slice(&fill[..3]);
        }
        4 => {
            o[..2].copy_from_slice(&[0x20, 0x02]);
            o[2..6].copy_from_slice(&v);
            o[6..14].copy_from_slice(&fill);
        }
        _ => {
            o[..4].copy_from_slice(&[0x20, 0x01, 0, 0]);
            o[4..12].copy_from_slice(&fill);
            for (i, b) in v.iter().enumerate() {
                o[12 + i] = !b;
            }
        }
    }
    Ipv6Addr::from(o)
}

proptest! {
    #[test]
    fn no_address_in_a_blocked_network_is_ever_permitted(
        v4 in internal_v4(),
        form in any::<u8>(),
        fill in any::<[u8; 8]>(),
        public in prop::collection::vec(any::<[u8; 4]>(), 0..3),
        port in any::<u16>(),
    ) {
        let policy = OutboundPolicy::internal_blocked();
        let v6 = carried(v4, form, fill);
        prop_assert!(policy.blocked_network(IpAddr::V4(v4)).is_some(), "{}", v4);
        prop_assert!(policy.blocked_network(IpAddr::V6(v6)).is_some(), "{} carrying {}", v6, v4);
        // Among other addresses, the blocked ones are filtered out.
        let mut addrs: Vec<SocketAddr> = public
            .iter()
            .map(|o| SocketAddr::new(IpAddr::from(*o), port))
            .collect();
        addrs.push(SocketAddr::new(IpAddr::V6(v6), port));
        addrs.push(SocketAddr::new(IpAddr::V4(v4), port));
        if let Ok(permitted) = policy.permitted(addrs) {
            for addr in permitted {
                prop_assert!(addr.ip() != IpAddr::V6(v6) && addr.ip() != IpAddr::V4(v4));
            }
        }
    }
}
