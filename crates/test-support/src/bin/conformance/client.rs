//! The client side: sending a spec's requests to the host and checking the answers.

use super::*;

pub(crate) struct Received {
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Bytes,
}

pub(crate) struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(crate) async fn send_request(address: SocketAddr, op: &RequestOp) -> Result<Received, String> {
    let stream = TcpStream::connect(address)
        .await
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP/1.1 handshake with {address}: {}", chain(&e)))?;
    let _connection = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let has = |name: &str| {
        op.headers
            .0
            .iter()
            .any(|(field, _)| field.eq_ignore_ascii_case(name))
    };
    let mut request = http::Request::builder()
        .method(op.method.as_str())
        .uri(op.path.as_str());
    if !has("host") {
        request = request.header(http::header::HOST, address.to_string());
    }
    for (name, value) in &op.headers.0 {
        request = request.header(name.as_str(), value.as_str());
    }
    let body = op.body.clone().unwrap_or_default();
    if op.body.is_some() && !has("content-length") && !has("transfer-encoding") {
        request = request.header(http::header::CONTENT_LENGTH, body.len());
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("no response: {}", chain(&e)))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| {
            format!(
                "status {}, then reading the response body failed: {}",
                parts.status.as_u16(),
                chain(&e)
            )
        })?
        .to_bytes();
    Ok(Received {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

pub(crate) fn check_response(expected: &ExpectedResponse, got: &Received) -> Result<(), String> {
    let mut problems = Vec::new();
    if got.status != expected.status {
        problems.push(format!(
            "status: expected {}, got {}",
            expected.status, got.status
        ));
    }
    if let Some(headers) = &expected.headers {
        for (name, value) in &headers.0 {
            let values: Vec<&[u8]> = got
                .headers
                .get_all(name.as_str())
                .iter()
                .map(|v| v.as_bytes())
                .collect();
            if values.is_empty() {
                problems.push(format!("header `{name}`: expected {value:?}, missing"));
            } else if !values.contains(&value.as_bytes()) {
                let values: Vec<String> = values.iter().map(|v| show(v)).collect();
                problems.push(format!(
                    "header `{name}`: expected {value:?}, got {}",
                    values.join(", ")
                ));
            }
        }
    }
    match &expected.body {
        Some(body) if got.body != body.as_bytes() => problems.push(format!(
            "body: expected {}, got {}",
            show(body.as_bytes()),
            show(&got.body)
        )),
        None if got.status != expected.status && !got.body.is_empty() => {
            problems.push(format!("(response body: {})", show(&got.body)));
        }
        _ => {}
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Bytes as a quoted, escaped, possibly shortened string.
pub(crate) fn show(bytes: &[u8]) -> String {
    const MAX: usize = 300;
    let text = String::from_utf8_lossy(bytes);
    if text.chars().count() <= MAX {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head:?}... ({} bytes)", bytes.len())
    }
}

/// An error with its sources.
pub(crate) fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
