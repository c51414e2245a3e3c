//! A lean HTTP/1.1 client for streaming benchmarks: POSTs BYTES (with
//! content-length, from one shared 1 MiB buffer, so sending copies nothing) to URL
//! and reads the response body, counting it; TRIPS times on one connection. Prints
//! one line per trip: bytes back, seconds, bytes/s. It exists so that the load tool
//! takes less of the shared cores than curl does.
//! Usage: `stream-client URL BYTES [TRIPS]`

use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;

const CHUNK: usize = 1 << 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: stream-client URL BYTES [TRIPS]";
    let url: http::Uri = args.next().ok_or(usage)?.parse()?;
    let total: u64 = args.next().ok_or(usage)?.parse()?;
    let trips: u32 = args.next().map_or(Ok(1), |t| t.parse())?;
    let authority = url.authority().ok_or("URL needs host:port")?.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let stream = tokio::net::TcpStream::connect(authority.as_str()).await?;
        stream.set_nodelay(true)?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let chunk = Bytes::from(vec![b'x'; CHUNK]);
        for _ in 0..trips {
            let chunk = chunk.clone();
            let frames = frames(total, chunk);
            let request = http::Request::post(url.clone())
                .header(http::header::HOST, authority.as_str())
                .header(http::header::CONTENT_LENGTH, total)
                .body(StreamBody::new(frames))?;
            let started = Instant::now();
            let response = sender.send_request(request).await?;
            let status = response.status();
            let mut body = response.into_body();
            let mut back = 0u64;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame?.into_data() {
                    back += data.len() as u64;
                }
            }
            let secs = started.elapsed().as_secs_f64();
            println!(
                "status {} bytes {back} seconds {secs:.3} rate {:.0}",
                status.as_u16(),
                back as f64 / secs
            );
            sender.ready().await?;
        }
        Ok(())
    })
}

/// `total` bytes as frames of (a slice of) `chunk`.
fn frames(
    total: u64,
    chunk: Bytes,
) -> impl futures::Stream<Item = Result<Frame<Bytes>, std::convert::Infallible>> {
    let size = chunk.len() as u64;
    let count = total.div_ceil(size);
    futures::stream::iter((0..count).map(move |i| {
        let n = (total - i * size).min(size) as usize;
        Ok(Frame::data(chunk.slice(..n)))
    }))
}
