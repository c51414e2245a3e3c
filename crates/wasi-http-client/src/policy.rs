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
/// cloud metadata address 169.254.169.254), carrier-grade NAT, unique-local and
/// unspecified addresses.
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

    /// Whether the URL-level rules let a request to `scheme://host:port` go out.
    pub(crate) fn allows_destination(&self, https: bool, host: &str, port: u16) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|r| r.matches(https, host, port))
    }

    /// The blocked network `ip` falls in, unless an allowed network covers it.
    pub(crate) fn blocked_network(&self, ip: IpAddr) -> Option<IpNet> {
        // An IPv4-mapped IPv6 address is the IPv4 address for this purpose.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if self.allow_networks.iter().any(|n| n.contains(&ip)) {
            return None;
        }
        self.block_networks
            .iter()
            .find(|n| n.contains(&ip))
            .copied()
    }
}

/// One allowed destination: `[scheme://]host[:port]`, where host is a name, a
/// `*.suffix` wildcard (any subdomain), `*` (any host) or an IP network in CIDR form.
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
            Some(_) => return Err(err("scheme must be http or https")),
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
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((s, None)),
    }
}

impl DestinationRule {
    /// Whether a request to `host:port` (over TLS or not) falls under this rule.
    pub(crate) fn matches(&self, https: bool, host: &str, port: u16) -> bool {
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
        for bad in ["ftp://x", "a*.b", "*.", "host:99999", "", "x/y"] {
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
        for ip in ["93.184.216.34", "2606:2800:220:1::1"] {
            assert!(p.blocked_network(ip.parse().unwrap()).is_none(), "{ip}");
        }
        let mut p = p;
        p.allow_networks.push("127.0.0.1/32".parse().unwrap());
        assert!(p.blocked_network("127.0.0.1".parse().unwrap()).is_none());
        assert!(p.blocked_network("127.0.0.2".parse().unwrap()).is_some());
    }
}
