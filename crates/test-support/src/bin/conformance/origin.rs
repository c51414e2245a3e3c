//! Origin servers: the raw HTTP/1.1 servers a spec lists, answering as it says.

use super::*;

/// A spec's origin server; stops serving when dropped.
pub(crate) struct Origin {
    pub(crate) address: SocketAddr,
    /// For `"kind": "closed"`: a bound socket that never listens, so that the port is
    /// refused and not handed to anyone else.
    pub(crate) _reserved: Option<TcpSocket>,
    pub(crate) task: Option<JoinHandle<()>>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

pub(crate) async fn start_origin(server: &ServerSpec, log: Arc<Log>) -> std::io::Result<Origin> {
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    if server.kind.as_deref() == Some("closed") {
        let socket = TcpSocket::new_v4()?;
        socket.bind(loopback)?;
        let address = socket.local_addr()?;
        log.push(format!(
            "[origin {}] closed port {address} (nothing listens)",
            server.name
        ));
        return Ok(Origin {
            address,
            _reserved: Some(socket),
            task: None,
        });
    }
    let listener = TcpListener::bind(loopback).await?;
    let address = listener.local_addr()?;
    let endpoints: Arc<[EndpointSpec]> = server.endpoints.clone().into();
    let name: Arc<str> = server.name.as_str().into();
    let task = tokio::spawn(async move {
        // Dropping the set (when this task is aborted) aborts every connection.
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        connections.spawn(serve_connection(
                            stream,
                            endpoints.clone(),
                            name.clone(),
                            log.clone(),
                        ));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });
    Ok(Origin {
        address,
        _reserved: None,
        task: Some(task),
    })
}

/// A request as an origin received it.
pub(crate) struct OriginRequest {
    pub(crate) method: String,
    /// The request-target in origin form (absolute-form targets are reduced to it).
    pub(crate) target: String,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) body: Vec<u8>,
    pub(crate) trailers: Vec<(String, Vec<u8>)>,
}

/// One request per connection, answered with `connection: close`.
pub(crate) async fn serve_connection(
    mut stream: TcpStream,
    endpoints: Arc<[EndpointSpec]>,
    name: Arc<str>,
    log: Arc<Log>,
) {
    let _ = stream.set_nodelay(true);
    let (reader, mut writer) = stream.split();
    let mut reader = tokio::io::BufReader::new(reader);
    let read =
        tokio::time::timeout(ORIGIN_READ_TIMEOUT, read_request(&mut reader, &mut writer)).await;
    let (reply, head_only) = match read {
        Err(_) => {
            log.push(format!(
                "[origin {name}] no complete request within {} s; closing",
                ORIGIN_READ_TIMEOUT.as_secs()
            ));
            return;
        }
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            log.push(format!("[origin {name}] bad request: {e} -> 400"));
            (Reply::empty(400), false)
        }
        Ok(Ok(Some(request))) => {
            let reply = answer(&endpoints, &request);
            log.push(format!(
                "[origin {name}] {} {} ({} header fields, {} body bytes, {} trailer fields) -> {}",
                request.method,
                request.target,
                request.headers.len(),
                request.body.len(),
                request.trailers.len(),
                reply.status
            ));
            (reply, request.method == "HEAD")
        }
    };
    if writer.write_all(&reply.encode(head_only)).await.is_err() {
        return;
    }
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
    // Read until the peer closes, so that unread input does not turn our close into a reset.
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(n) = reader.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// One line without its CRLF (or LF); `None` at end of stream before any byte.
pub(crate) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> Result<Option<Vec<u8>>, String> {
    let mut line = Vec::new();
    let n = reader
        .take(limit as u64)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| format!("read error: {e}"))?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(if n >= limit {
            "line too long".into()
        } else {
            "connection closed in the middle of a line".into()
        });
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(line))
}

/// A header or trailer section, up to and including its empty line.
pub(crate) async fn read_fields<R: AsyncBufRead + Unpin>(
    reader: &mut R,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut fields = Vec::new();
    let mut used = 0;
    loop {
        let line = read_line(reader, (MAX_HEAD - used).max(2))
            .await?
            .ok_or("connection closed in a header section")?;
        used += line.len() + 2;
        if used > MAX_HEAD {
            return Err("header section too large".into());
        }
        if line.is_empty() {
            return Ok(fields);
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err("obsolete line folding in a header section".into());
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| format!("field line without a colon: {}", show(&line)))?;
        let name = &line[..colon];
        if http::HeaderName::from_bytes(name).is_err() {
            return Err(format!("invalid field name {}", show(name)));
        }
        let value = line[colon + 1..].trim_ascii();
        fields.push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
    }
}

pub(crate) fn field_values<'a>(
    fields: &'a [(String, Vec<u8>)],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> {
    fields
        .iter()
        .filter(move |(field, _)| field.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_slice())
}

pub(crate) async fn read_request<R, W>(
    reader: &mut R,
    writer: &mut W,
) -> Result<Option<OriginRequest>, String>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Empty lines before a request line are allowed (RFC 9112, 2.2).
    let line = loop {
        match read_line(reader, MAX_HEAD).await? {
            None => return Ok(None),
            Some(line) if line.is_empty() => continue,
            Some(line) => break line,
        }
    };
    let line = String::from_utf8(line).map_err(|_| "request line is not UTF-8".to_owned())?;
    let mut parts = line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version), None)
            if !method.is_empty() && !target.is_empty() =>
        {
            (method, target, version)
        }
        _ => return Err(format!("malformed request line {line:?}")),
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("unsupported version {version:?}"));
    }
    let headers = read_fields(reader).await?;
    if field_values(&headers, "expect").any(|v| v.eq_ignore_ascii_case(b"100-continue")) {
        writer
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .map_err(|e| format!("write error: {e}"))?;
        writer
            .flush()
            .await
            .map_err(|e| format!("write error: {e}"))?;
    }
    let codings: Vec<String> = field_values(&headers, "transfer-encoding")
        .flat_map(|value| value.split(|&b| b == b','))
        .map(|coding| String::from_utf8_lossy(coding.trim_ascii()).to_ascii_lowercase())
        .filter(|coding| !coding.is_empty())
        .collect();
    let lengths: Vec<&[u8]> = field_values(&headers, "content-length").collect();
    let (body, trailers) = if !codings.is_empty() {
        if codings.last().map(String::as_str) != Some("chunked") {
            return Err(format!("unsupported transfer-encoding {codings:?}"));
        }
        read_chunked(reader).await?
    } else if let Some(first) = lengths.first() {
        if lengths.iter().any(|length| length != first) {
            return Err("conflicting content-length fields".into());
        }
        let length: usize = std::str::from_utf8(first)
            .ok()
            .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| format!("invalid content-length {}", show(first)))?;
        if length > MAX_BODY {
            return Err("request body too large".into());
        }
        let mut body = vec![0; length];
        reader
            .read_exact(&mut body)
            .await
            .map_err(|e| format!("reading a {length}-byte body: {e}"))?;
        (body, Vec::new())
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(Some(OriginRequest {
        method: method.to_owned(),
        target: origin_form(target),
        headers,
        body,
        trailers,
    }))
}

pub(crate) type Fields = Vec<(String, Vec<u8>)>;

pub(crate) async fn read_chunked<R: AsyncBufRead + Unpin>(
    reader: &mut R,
) -> Result<(Vec<u8>, Fields), String> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader, 4096)
            .await?
            .ok_or("connection closed in a chunked body")?;
        let text = String::from_utf8_lossy(&line);
        let size_text = text.split(';').next().unwrap_or("").trim();
        let size = Some(size_text)
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or_else(|| format!("invalid chunk size line {text:?}"))?;
        if size == 0 {
            break;
        }
        if body.len() + size > MAX_BODY {
            return Err("request body too large".into());
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader
            .read_exact(&mut body[start..])
            .await
            .map_err(|e| format!("reading a {size}-byte chunk: {e}"))?;
        match read_line(reader, 2).await? {
            Some(end) if end.is_empty() => {}
            _ => return Err("a chunk is not followed by CRLF".into()),
        }
    }
    let trailers = read_fields(reader).await?;
    Ok((body, trailers))
}

/// `http://host:port/p?q` -> `/p?q`; origin-form targets unchanged.
pub(crate) fn origin_form(target: &str) -> String {
    let Some(scheme_end) = target.find("://") else {
        return target.to_owned();
    };
    let rest = &target[scheme_end + 3..];
    match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => rest[i..].to_owned(),
        Some(i) => format!("/{}", &rest[i..]),
        None => "/".to_owned(),
    }
}

pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Fields,
    pub(crate) body: ReplyBody,
}

pub(crate) enum ReplyBody {
    Full(Vec<u8>),
    Chunked {
        chunks: Vec<String>,
        trailers: Headers,
    },
}

impl Reply {
    pub(crate) fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Full(Vec::new()),
        }
    }

    pub(crate) fn from_spec(response: &OriginResponse) -> Reply {
        let headers = response
            .headers
            .0
            .iter()
            .map(|(name, value)| (name.clone(), value.clone().into_bytes()))
            .collect();
        let body = if response.chunks.is_some() || !response.trailers.0.is_empty() {
            ReplyBody::Chunked {
                chunks: response
                    .chunks
                    .clone()
                    .unwrap_or_else(|| response.body.clone().into_iter().collect()),
                trailers: response.trailers.clone(),
            }
        } else {
            ReplyBody::Full(response.body.clone().unwrap_or_default().into_bytes())
        };
        Reply {
            status: response.status,
            headers,
            body,
        }
    }

    pub(crate) fn encode(&self, head_only: bool) -> Vec<u8> {
        fn field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        let has = |name: &str| {
            self.headers
                .iter()
                .any(|(field, _)| field.eq_ignore_ascii_case(name))
        };
        let reason = http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|status| status.canonical_reason())
            .unwrap_or("Status");
        let mut out = format!("HTTP/1.1 {} {reason}\r\n", self.status).into_bytes();
        for (name, value) in &self.headers {
            field(&mut out, name, value);
        }
        if !has("connection") {
            field(&mut out, "connection", b"close");
        }
        let body_allowed = !matches!(self.status, 100..=199 | 204 | 304);
        let send_body = body_allowed && !head_only;
        match &self.body {
            ReplyBody::Full(body) => {
                if body_allowed && !has("content-length") {
                    field(
                        &mut out,
                        "content-length",
                        body.len().to_string().as_bytes(),
                    );
                }
                out.extend_from_slice(b"\r\n");
                if send_body {
                    out.extend_from_slice(body);
                }
            }
            ReplyBody::Chunked { chunks, trailers } => {
                if body_allowed && !has("transfer-encoding") {
                    field(&mut out, "transfer-encoding", b"chunked");
                }
                if body_allowed && !trailers.0.is_empty() && !has("trailer") {
                    let names: Vec<&str> =
                        trailers.0.iter().map(|(name, _)| name.as_str()).collect();
                    field(&mut out, "trailer", names.join(", ").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
                if send_body {
                    // An empty chunk would end the body early: skip it.
                    for chunk in chunks.iter().filter(|chunk| !chunk.is_empty()) {
                        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                        out.extend_from_slice(chunk.as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(b"0\r\n");
                    for (name, value) in &trailers.0 {
                        field(&mut out, name, value.as_bytes());
                    }
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
        out
    }
}

pub(crate) fn answer(endpoints: &[EndpointSpec], request: &OriginRequest) -> Reply {
    let Some(endpoint) = endpoints
        .iter()
        .find(|e| e.method == request.method && e.path == request.target)
    else {
        return Reply::empty(404);
    };
    match endpoint.mode.as_deref() {
        Some("echo-body") => Reply {
            status: 200,
            headers: Vec::new(),
            body: ReplyBody::Full(request.body.clone()),
        },
        Some("echo-headers") => {
            let mut headers = vec![
                (
                    "x-request-method".to_owned(),
                    request.method.clone().into_bytes(),
                ),
                (
                    "x-request-path".to_owned(),
                    request.target.clone().into_bytes(),
                ),
            ];
            for (name, value) in &request.headers {
                headers.push((
                    format!("x-echo-{}", name.to_ascii_lowercase()),
                    value.clone(),
                ));
            }
            for (name, value) in &request.trailers {
                headers.push((
                    format!("x-trailer-{}", name.to_ascii_lowercase()),
                    value.clone(),
                ));
            }
            Reply {
                status: 200,
                headers,
                body: ReplyBody::Full(Vec::new()),
            }
        }
        _ => match &endpoint.response {
            Some(response) => Reply::from_spec(response),
            // Ruled out by `validate`.
            None => Reply::empty(500),
        },
    }
}
