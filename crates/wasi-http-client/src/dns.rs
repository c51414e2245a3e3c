//! Name resolution for the default client, with typed failures.
//!
//! Two resolvers: the operating system's (getaddrinfo, so `/etc/hosts`, nsswitch and
//! `resolv.conf` behave as every other program on the machine expects) and a direct
//! DNS client for operators who name their nameservers. Both report why a name did not
//! resolve from the resolver's own error codes, never from message text: the guest sees
//! `DNS-error` with an `rcode` (`NXDOMAIN`, `SERVFAIL`, ...) or `DNS-timeout`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

#[cfg(feature = "hickory")]
use hickory_resolver::{
    config::{NameServerConfig, ResolverConfig},
    net::runtime::TokioRuntimeProvider,
    net::{DnsError, NetError},
    proto::op::ResponseCode,
    TokioResolver,
};
use wasi_http_core::{DnsErrorPayload, ErrorCode};

/// How the default client turns host names into addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resolver {
    /// The operating system's resolver (getaddrinfo). Its failures are coarse:
    /// `NXDOMAIN` for an unknown name, `SERVFAIL` for a failing or unreachable server.
    #[default]
    System,
    /// Query these DNS servers directly (UDP, TCP for long answers), in order. Failures
    /// carry the server's exact response code. (Feature `hickory`.)
    #[cfg(feature = "hickory")]
    Nameservers(Vec<SocketAddr>),
}

/// A resolver ready for lookups.
#[derive(Clone)]
pub(crate) enum Lookup {
    System,
    #[cfg(feature = "hickory")]
    Dns(Box<TokioResolver>),
}

impl Lookup {
    /// Builds the resolver; `timeout` bounds each query to a nameserver.
    pub(crate) fn new(resolver: &Resolver, timeout: Duration) -> Result<Lookup, String> {
        match resolver {
            Resolver::System => {
                let _ = timeout;
                Ok(Lookup::System)
            }
            #[cfg(feature = "hickory")]
            Resolver::Nameservers(servers) => {
                if servers.is_empty() {
                    return Err("Resolver::Nameservers needs at least one server".into());
                }
                let servers = servers
                    .iter()
                    .map(|server| {
                        let mut config = NameServerConfig::udp_and_tcp(server.ip());
                        for connection in &mut config.connections {
                            connection.port = server.port();
                        }
                        config
                    })
                    .collect();
                let mut builder = TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(servers),
                    TokioRuntimeProvider::default(),
                );
                builder.options_mut().timeout = timeout;
                builder.options_mut().attempts = 1;
                builder
                    .build()
                    .map(|r| Lookup::Dns(Box::new(r)))
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// The addresses of `host` (a name, not an IP literal), with `port`.
    pub(crate) async fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, ErrorCode> {
        let ips: Vec<IpAddr> = match self {
            Lookup::System => {
                let name = host.to_owned();
                tokio::task::spawn_blocking(move || system_lookup(&name))
                    .await
                    .map_err(|_| ErrorCode::InternalError(Some("resolver task failed".into())))??
            }
            #[cfg(feature = "hickory")]
            Lookup::Dns(resolver) => resolver
                .lookup_ip(host)
                .await
                .map_err(|e| from_net_error(&e))?
                .iter()
                .collect(),
        };
        if ips.is_empty() {
            return Err(ErrorCode::dns("NODATA"));
        }
        Ok(ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect())
    }
}

fn system_lookup(host: &str) -> Result<Vec<IpAddr>, ErrorCode> {
    let hints = dns_lookup::AddrInfoHints {
        socktype: dns_lookup::SockType::Stream.into(),
        ..Default::default()
    };
    let answers = dns_lookup::getaddrinfo(Some(host), None, Some(hints))
        .map_err(|e| from_gai_error(e.kind()))?;
    let mut ips: Vec<IpAddr> = Vec::new();
    for answer in answers.flatten() {
        if !ips.contains(&answer.sockaddr.ip()) {
            ips.push(answer.sockaddr.ip());
        }
    }
    Ok(ips)
}

/// getaddrinfo's result codes, as close to a DNS rcode as they allow.
fn from_gai_error(kind: dns_lookup::LookupErrorKind) -> ErrorCode {
    use dns_lookup::LookupErrorKind as K;
    match kind {
        K::NoName => ErrorCode::dns("NXDOMAIN"),
        K::NoData => ErrorCode::dns("NODATA"),
        // glibc answers EAI_AGAIN for a SERVFAIL as well as for no answer in time.
        K::Again | K::Fail => ErrorCode::dns("SERVFAIL"),
        other => {
            tracing::debug!(kind = ?other, "getaddrinfo failed");
            ErrorCode::DnsError(DnsErrorPayload {
                rcode: None,
                info_code: None,
            })
        }
    }
}

#[cfg(feature = "hickory")]
fn from_net_error(e: &NetError) -> ErrorCode {
    match e {
        NetError::Timeout => ErrorCode::DnsTimeout,
        NetError::Dns(DnsError::NoRecordsFound(none)) => match none.response_code {
            ResponseCode::NoError => ErrorCode::dns("NODATA"),
            code => ErrorCode::dns(rcode_name(code)),
        },
        NetError::Dns(DnsError::ResponseCode(code)) => ErrorCode::dns(rcode_name(*code)),
        NetError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => ErrorCode::DnsTimeout,
        other => {
            tracing::debug!(error = %other, "DNS lookup failed");
            ErrorCode::DnsError(DnsErrorPayload {
                rcode: None,
                info_code: None,
            })
        }
    }
}

/// The IANA mnemonic of a DNS response code (RFC 6895 §2.3).
#[cfg(feature = "hickory")]
fn rcode_name(code: ResponseCode) -> &'static str {
    match u16::from(code) {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getaddrinfo_codes_map_to_rcodes() {
        use dns_lookup::LookupErrorKind as K;
        let rcode = |kind| match from_gai_error(kind) {
            ErrorCode::DnsError(p) => p.rcode,
            other => panic!("{other:?}"),
        };
        assert_eq!(rcode(K::NoName).as_deref(), Some("NXDOMAIN"));
        assert_eq!(rcode(K::Again).as_deref(), Some("SERVFAIL"));
        assert_eq!(rcode(K::Memory), None);
    }

    #[test]
    #[cfg(feature = "hickory")]
    fn response_codes_have_their_mnemonics() {
        assert_eq!(rcode_name(ResponseCode::NXDomain), "NXDOMAIN");
        assert_eq!(rcode_name(ResponseCode::ServFail), "SERVFAIL");
        assert_eq!(rcode_name(ResponseCode::Refused), "REFUSED");
    }
}
