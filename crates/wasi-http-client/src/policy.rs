//! Outbound policy: which destinations a guest may reach, checked by the host before
//! any connection. Host rules are checked on the URL; network rules on every address
//! the name resolves to, so a DNS name cannot smuggle a request to an internal address.

use std::net::IpAddr;

use ipnet::IpNet;

/// What outgoing requests may reach. The default allows everything; see
/// [`OutboundPolicy::internal_blocked`] for the policy `wasi-http serve` starts from.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct OutboundPolicy {
    /// Destinations allowed; empty means any destination (networks still apply).
    pub allow: Vec<DestinationRule>,
    /// Networks refused after DNS resolution (and for IP literals).
    pub block_networks: Vec<IpNet>,
    /// Networks allowed even inside a blocked network.
    pub allow_networks: Vec<IpNet>,
}

/// Networks no public destination lives in: loopback, private, link-local (with the
/// cloud metadata address 169.254.169.254), carrier-grade NAT, unique-local,
/// unspecified addresses and NAT64's local-use prefix. IPv6 addresses that carry
/// an IPv4 address count as that address too (see `blocked_network`).
pub const INTERNAL_NETWORKS: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "::/128",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
    // NAT64's local-use prefix (RFC 8215): translation into a private network.
    "64:ff9b:1::/48",
];

impl OutboundPolicy {
    /// Any destination except the [`INTERNAL_NETWORKS`].
    pub fn internal_blocked() -> Self {
        OutboundPolicy {
            allow: Vec::new(),
            block_networks: INTERNAL_NETWORKS
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
            allow_networks: Vec::new(),
        }
    }

    /// Whether the URL-level rules let a request to `scheme://host:port` go out
    /// (addresses are checked after resolution: [`permitted`](Self::permitted)).
    pub fn allows_destination(&self, https: bool, host: &str, port: u16) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|r| r.matches(https, host, port))
    }

    /// The blocked network `ip` falls in, unless an allowed network covers it.
    ///
    /// An IPv6 address that carries an IPv4 address (IPv4-mapped, IPv4-compatible,
    /// NAT64's well-known prefix, 6to4, Teredo) is blocked when that IPv4 address
    /// is, since a translator or relay on the path would deliver it there.
    pub fn blocked_network(&self, ip: IpAddr) -> Option<IpNet> {
        let allowed = |ip: &IpAddr| self.allow_networks.iter().any(|n| n.contains(ip));
        let blocked = |ip: &IpAddr| self.block_networks.iter().find(|n| n.contains(ip)).copied();
        let v6 = match ip {
            IpAddr::V4(_) => return if allowed(&ip) { None } else { blocked(&ip) },
            IpAddr::V6(v6) => v6,
        };
        // An IPv4-mapped address is the IPv4 address for every purpose.
        if let Some(v4) = v6.to_ipv4_mapped() {
            let ip = IpAddr::V4(v4);
            return if allowed(&ip) { None } else { blocked(&ip) };
        }
        if allowed(&ip) {
            return None;
        }
        blocked(&ip).or_else(|| {
            embedded_ipv4(v6)
                .into_iter()
                .flatten()
                .map(IpAddr::V4)
                .find_map(|v4| if allowed(&v4) { None } else { blocked(&v4) })
        })
    }
}

impl OutboundPolicy {
    /// The resolved addresses a connection may go to: those in no blocked
    /// network. `Err` with one blocked address and its network when every
    /// address is blocked; an empty list stays empty.
    pub fn permitted(
        &self,
        addrs: impl IntoIterator<Item = std::net::SocketAddr>,
    ) -> Result<Vec<std::net::SocketAddr>, (IpAddr, IpNet)> {
        let mut blocked = None;
        let permitted: Vec<_> = addrs
            .into_iter()
            .filter(|addr| match self.blocked_network(addr.ip()) {
                Some(net) => {
                    blocked = Some((addr.ip(), net));
                    false
                }
                None => true,
            })
            .collect();
        match (permitted.is_empty(), blocked) {
            (true, Some(blocked)) => Err(blocked),
            _ => Ok(permitted),
        }
    }
}

/// The IPv4 addresses an IPv6 address carries by a standard translation or tunnel
/// (IPv4-mapped `::ffff:0:0/96` is handled by its caller):
/// - IPv4-compatible `::/96` (deprecated, RFC 4291 §2.5.5.1; `::` and `::1` are
///   the unspecified and loopback addresses, and carry 0.0.0.0 and 0.0.0.1);
/// - NAT64's well-known prefix `64:ff9b::/96` (RFC 6052; the local-use
///   `64:ff9b:1::/48`, whose operator may embed at several prefix lengths, is
///   blocked whole by default);
/// - 6to4 `2002::/16` (RFC 3056): bits 16-47;
/// - Teredo `2001::/32` (RFC 4380): the server (bits 32-63) and the client (the
///   last 32 bits, inverted).
pub(crate) fn embedded_ipv4(v6: std::net::Ipv6Addr) -> [Option<std::net::Ipv4Addr>; 2] {
    use std::net::Ipv4Addr;
    let o = v6.octets();
    let v4 = |a: u8, b: u8, c: u8, d: u8| Some(Ipv4Addr::new(a, b, c, d));
    let seg = v6.segments();
    if seg[..6] == [0; 6] || seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return [v4(o[12], o[13], o[14], o[15]), None];
    }
    if seg[0] == 0x2002 {
        return [v4(o[2], o[3], o[4], o[5]), None];
    }
    if seg[..2] == [0x2001, 0] {
        return [
            v4(o[4], o[5], o[6], o[7]),
            v4(!o[12], !o[13], !o[14], !o[15]),
        ];
    }
    [None; 2]
}

/// One allowed destination: `[scheme://]host[:port]`, where scheme is `http`,
/// `https` or `*` (either), host is a name, a `*.suffix` wildcard (any
/// subdomain), `*` (any host) or an IP network in CIDR form, and port a number or
/// `*` (any; also what no port means). Spin's spellings (`*://host:port`,
/// `http://127.0.0.1:*`) are accepted as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationRule {
    https: Option<bool>,
    host: HostPattern,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    Suffix(String),
    Network(IpNet),
}

/// Why a destination rule did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError(String);

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RuleError {}

impl std::str::FromStr for DestinationRule {
    type Err = RuleError;

    fn from_str(rule: &str) -> Result<Self, RuleError> {
        let err = |why: &str| RuleError(format!("invalid destination `{rule}`: {why}"));
        let (https, rest) = match rule.split_once("://") {
            Some(("http", rest)) => (Some(false), rest),
            Some(("https", rest)) => (Some(true), rest),
            // Spin's spelling of "either scheme".
            Some(("*", rest)) => (None, rest),
            Some(_) => return Err(err("scheme must be http, https or *")),
            None => (None, rule),
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') && !is_cidr(rest) {
            return Err(err("expected host[:port], *.domain or an IP network"));
        }
        // CIDR first: `10.0.0.0/8` has no port; `[::1]:80` and `host:80` do.
        if let Ok(net) = rest.parse::<IpNet>() {
            return Ok(DestinationRule {
                https,
                host: HostPattern::Network(net),
                port: None,
            });
        }
        let (host, port) = split_port(rest).ok_or_else(|| err("invalid port"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let pattern = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(err("a wildcard must be `*.domain`"));
            }
            HostPattern::Suffix(format!(".{suffix}"))
        } else if host.contains('*') {
            return Err(err("a wildcard must be `*.domain`"));
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            HostPattern::Network(IpNet::from(ip))
        } else {
            HostPattern::Exact(host)
        };
        Ok(DestinationRule {
            https,
            host: pattern,
            port,
        })
    }
}

fn is_cidr(s: &str) -> bool {
    s.parse::<IpNet>().is_ok()
}

fn split_port(s: &str) -> Option<(&str, Option<u16>)> {
    if s.ends_with(']') || s.matches(':').count() > 1 && !s.starts_with('[') {
        return Some((s, None));
    }
    match s.rsplit_once(':') {
        // Spin's spelling of "any port".
        Some((host, "*")) => Some((host, None)),
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((s, None)),
    }
}

impl DestinationRule {
    /// Whether a request to `host:port` (over TLS or not) falls under this rule.
    pub fn matches(&self, https: bool, host: &str, port: u16) -> bool {
        if self.https.is_some_and(|h| h != https) || self.port.is_some_and(|p| p != port) {
            return false;
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let host = host.trim_end_matches('.');
        match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(name) => host == name,
            HostPattern::Suffix(suffix) => host.ends_with(suffix.as_str()),
            HostPattern::Network(net) => host.parse::<IpAddr>().is_ok_and(|ip| net.contains(&ip)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> DestinationRule {
        s.parse().unwrap()
    }

    #[test]
    fn rules_match_scheme_host_and_port() {
        assert!(rule("example.com").matches(true, "EXAMPLE.com", 443));
        assert!(!rule("example.com").matches(true, "api.example.com", 443));
        assert!(rule("*.example.com").matches(false, "api.example.com", 80));
        assert!(!rule("*.example.com").matches(false, "example.com", 80));
        assert!(!rule("*.example.com").matches(false, "badexample.com", 80));
        assert!(rule("https://api.test:8443").matches(true, "api.test", 8443));
        assert!(!rule("https://api.test:8443").matches(false, "api.test", 8443));
        assert!(!rule("https://api.test:8443").matches(true, "api.test", 443));
        assert!(rule("10.1.0.0/16").matches(false, "10.1.2.3", 80));
        assert!(!rule("10.1.0.0/16").matches(false, "10.2.0.1", 80));
        assert!(rule("[::1]:8080").matches(false, "[::1]", 8080));
        assert!(rule("*").matches(true, "anything", 1));
        // Spin's spellings: any port, any scheme.
        assert!(rule("http://127.0.0.1:*").matches(false, "127.0.0.1", 8080));
        assert!(!rule("http://127.0.0.1:*").matches(true, "127.0.0.1", 8080));
        assert!(rule("api.test:*").matches(true, "api.test", 1));
        assert!(rule("*://api.test:8443").matches(false, "api.test", 8443));
        assert!(rule("*://api.test:8443").matches(true, "api.test", 8443));
        assert!(!rule("*://api.test:8443").matches(true, "api.test", 443));
        assert!(rule("*://*.example.com:*").matches(true, "a.example.com", 9));
        for bad in [
            "ftp://x",
            "a*.b",
            "*.",
            "host:99999",
            "",
            "x/y",
            "host:**",
            "**://x",
        ] {
            assert!(bad.parse::<DestinationRule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn internal_networks_are_blocked_including_mapped_v4() {
        let p = OutboundPolicy::internal_blocked();
        for ip in [
            "127.0.0.1",
            "10.0.0.5",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "192.168.1.1",
        ] {
            assert!(p.blocked_network(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "2606:2800:220:1::1",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::1",
        ] {
            assert!(p.blocked_network(ip.parse().unwrap()).is_none(), "{ip}");
        }
        let mut p = p;
        p.allow_networks.push("127.0.0.1/32".parse().unwrap());
        assert!(p
            .blocked_network("::ffff:127.0.0.1".parse().unwrap())
            .is_none());
        assert!(p
            .blocked_network("64:ff9b::127.0.0.1".parse().unwrap())
            .is_none());
        assert!(p.blocked_network("127.0.0.1".parse().unwrap()).is_none());
        assert!(p.blocked_network("127.0.0.2".parse().unwrap()).is_some());
    }

    #[test]
    fn ipv6_forms_that_carry_an_internal_ipv4_address_are_blocked() {
        let p = OutboundPolicy::internal_blocked();
        for ip in [
            // IPv4-compatible
            "::127.0.0.1",
            "::10.1.2.3",
            "::169.254.169.254",
            // NAT64, well-known prefix
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::192.168.0.1",
            // NAT64, local-use prefix (blocked whole), at /96, /64, /56 and /48
            "64:ff9b:1::10.0.0.1",
            "64:ff9b:1::93.184.216.34",
            "64:ff9b:1:0:7f:0:100:0",
            "64:ff9b:1:7f:0:1::",
            "64:ff9b:1:7f00:0:100::",
            // 6to4
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::",
            "2002:c0a8:101:1::1",
            // Teredo: server 127.0.0.1, or client 10.0.0.1 inverted
            "2001:0:7f00:1::1",
            "2001:0:5db8:d822:0:0:f5ff:fffe",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(p.blocked_network(ip).is_some(), "{ip}");
        }
        // The same forms around public addresses pass.
        for ip in [
            "::93.184.216.34",
            "2002:5db8:d822::1",
            "2001:0:5db8:d822::a247:27dd",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(p.blocked_network(ip).is_none(), "{ip}");
        }
    }
}
