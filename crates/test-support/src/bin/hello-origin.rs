//! A native hyper origin for load benchmarks: answers `hello\n` on every path
//! (HTTP/1.1 and HTTP/2 cleartext), the number of connections it accepted on
//! `/__connections`, and streams the request body back on `/__echo` (the native
//! baseline of the echo guest); as an OTLP/HTTP collector that keeps nothing, it
//! answers `/v1/traces` with an empty success. Usage: hello-origin ADDR (e.g.
//! 127.0.0.1:0); prints its address.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    let accepted = Arc::new(AtomicUsize::new(0));
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        accepted.fetch_add(1, Ordering::Relaxed);
        let accepted = accepted.clone();
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let body = match req.uri().path() {
                        "/__echo" => req.into_body().boxed(),
                        // An empty ExportTraceServiceResponse: all accepted.
                        "/v1/traces" => full(String::new()),
                        "/__connections" => full(format!("{}\n", accepted.load(Ordering::Relaxed))),
                        _ => full("hello\n".to_owned()),
                    };
                    async move { Ok::<_, Infallible>(http::Response::new(body)) }
                });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

fn full(text: String) -> BoxBody<Bytes, hyper::Error> {
    Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed()
}
