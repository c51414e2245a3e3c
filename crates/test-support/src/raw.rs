//! A server that writes exact bytes, for responses hyper would refuse to send.

use super::*;

/// What a [`RawServer`] does with each connection after reading the request head.
#[derive(Clone, Debug)]
pub struct RawScript {
    /// Pieces to write, each after sleeping its delay.
    pub steps: Vec<(Duration, Vec<u8>)>,
    /// Keep the connection open (idle) after the steps instead of closing it.
    pub hold_open: bool,
}

/// A server that writes exact bytes, for responses hyper would refuse to send.
pub struct RawServer {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl RawServer {
    /// Starts a raw server running `script` on every connection.
    pub async fn start(script: RawScript) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind raw");
        let addr = listener.local_addr().expect("raw addr");
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let script = script.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    for (delay, bytes) in script.steps {
                        tokio::time::sleep(delay).await;
                        if stream.write_all(&bytes).await.is_err() {
                            return;
                        }
                    }
                    if script.hold_open {
                        tokio::time::sleep(Duration::from_secs(600)).await;
                    }
                });
            }
        });
        RawServer { addr, task }
    }

    /// A raw server that writes `bytes` at once and closes.
    pub async fn respond(bytes: &[u8]) -> RawServer {
        RawServer::start(RawScript {
            steps: vec![(Duration::ZERO, bytes.to_vec())],
            hold_open: false,
        })
        .await
    }

    /// A URL on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
