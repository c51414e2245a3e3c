//! chaos-origin: an HTTP/1.1 origin for the soak test (loopback only) that
//! misbehaves on a fraction of requests: 60% answer at once, 15% answer after
//! 0.2-1.5 s, 10% close the connection without an answer, 10% send half of a
//! declared body and stall for a minute, 5% send half of a body and reset.
//! Usage: chaos-origin 127.0.0.1:PORT

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Body as _;
use hyper::body::Frame;
use hyper_util::rt::TokioIo;

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// A xorshift step on a shared state: good enough to pick a behaviour.
fn random(state: &AtomicU64) -> u64 {
    let mut x = state.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    state.store(x, Ordering::Relaxed);
    x
}

static STATE: AtomicU64 = AtomicU64::new(0x2545_f491_4f6c_dd1d);

enum Behaviour {
    Fast,
    Slow(Duration),
    Close,
    Stall,
    Reset,
}

fn pick() -> Behaviour {
    let r = random(&STATE);
    match r % 100 {
        0..=59 => Behaviour::Fast,
        60..=74 => Behaviour::Slow(Duration::from_millis(200 + (r >> 8) % 1300)),
        75..=84 => Behaviour::Close,
        85..=94 => Behaviour::Stall,
        _ => Behaviour::Reset,
    }
}

fn half_then(after: Result<(), std::io::Error>, wait: Duration) -> Body {
    let half = futures::stream::once(async {
        Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![b'h'; 2048])))
    });
    let rest = futures::stream::once(async move {
        tokio::time::sleep(wait).await;
        match after {
            Ok(()) => Ok(Frame::data(Bytes::from(vec![b'h'; 2048]))),
            Err(e) => Err(e),
        }
    });
    StreamBody::new(futures::StreamExt::chain(half, rest)).boxed()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: std::net::SocketAddr = std::env::args()
        .nth(1)
        .ok_or("usage: chaos-origin 127.0.0.1:PORT")?
        .parse()?;
    if !addr.ip().is_loopback() {
        return Err("chaos-origin listens on loopback only".into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        eprintln!("chaos-origin on http://{addr}/");
        loop {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async move {
                    let behaviour = pick();
                    let response = match behaviour {
                        Behaviour::Fast => Some(
                            Full::new(Bytes::from_static(b"origin ok\n"))
                                .map_err(|n| match n {})
                                .boxed(),
                        ),
                        Behaviour::Slow(wait) => {
                            tokio::time::sleep(wait).await;
                            Some(
                                Full::new(Bytes::from_static(b"origin slow\n"))
                                    .map_err(|n| match n {})
                                    .boxed(),
                            )
                        }
                        Behaviour::Close => None,
                        Behaviour::Stall => Some(half_then(Ok(()), Duration::from_secs(60))),
                        Behaviour::Reset => Some(half_then(
                            Err(std::io::Error::other("reset")),
                            Duration::from_millis(100),
                        )),
                    };
                    match response {
                        Some(body) => {
                            let len = body.size_hint().exact().unwrap_or(4096);
                            let mut r = http::Response::new(body);
                            r.headers_mut()
                                .insert(http::header::CONTENT_LENGTH, len.into());
                            Ok(r)
                        }
                        // hyper closes the connection when the service fails.
                        None => Err(std::io::Error::other("close")),
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
