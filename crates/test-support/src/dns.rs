//! A DNS server on loopback with one fixed way of answering.

use super::*;

/// How a [`DnsServer`] answers every query.
#[derive(Clone, Copy, Debug)]
pub enum DnsAnswer {
    /// `A` queries get this address; other types an empty `NOERROR`.
    A(std::net::Ipv4Addr),
    /// This response code (e.g. 2 = SERVFAIL, 3 = NXDOMAIN) and no records.
    Rcode(u8),
    /// No answer at all.
    Silent,
}

/// A DNS server on 127.0.0.1 (UDP) with one fixed way of answering.
pub struct DnsServer {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl DnsServer {
    /// Starts a server answering every query with `answer`.
    pub async fn start(answer: DnsAnswer) -> DnsServer {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind dns");
        let addr = socket.local_addr().expect("dns addr");
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                if let Some(reply) = dns_reply(&buf[..n], answer) {
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        });
        DnsServer { addr, task }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The reply to one query (RFC 1035 §4.1): the header with QR set, the question echoed,
/// and for an `A` question one answer pointing back at it.
fn dns_reply(query: &[u8], answer: DnsAnswer) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    // The question: labels up to the root, then type and class.
    let mut end = 12;
    while *query.get(end)? != 0 {
        end += 1 + usize::from(query[end]);
    }
    let qtype = u16::from_be_bytes([*query.get(end + 1)?, *query.get(end + 2)?]);
    let question = query.get(12..end + 5)?;
    let (rcode, record) = match answer {
        DnsAnswer::Silent => return None,
        DnsAnswer::Rcode(rcode) => (rcode, None),
        DnsAnswer::A(ip) => (0, (qtype == 1).then_some(ip)),
    };
    let mut reply = Vec::with_capacity(64);
    reply.extend_from_slice(&query[0..2]); // id
    reply.push(0x80 | (query[2] & 0x01) | 0x04); // QR, RD echoed, AA
    reply.push(0x80 | (rcode & 0x0f)); // RA, rcode
    reply.extend_from_slice(&[0, 1, 0, u8::from(record.is_some()), 0, 0, 0, 0]);
    reply.extend_from_slice(question);
    if let Some(ip) = record {
        // Name by pointer to the question, type A, class IN, TTL 60, 4 bytes.
        reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        reply.extend_from_slice(&ip.octets());
    }
    Some(reply)
}
