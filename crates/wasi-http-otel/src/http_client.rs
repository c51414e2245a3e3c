//! The exporter's HTTP client: `opentelemetry_http::HttpClient` on the
//! workspace's own client.

use bytes::Bytes;
use http_body_util::BodyExt;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use wasi_http_core::OutgoingRequest;

/// Sends the exporter's requests with a [`wasi_http_client::Client`].
#[derive(Debug, Clone)]
pub(crate) struct ExportClient(pub(crate) wasi_http_client::Client);

/// Largest collector response read (its body is a status message).
const MAX_RESPONSE: usize = 1 << 20;

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = request.map(wasi_http_core::body::full);
        let response = self.0.send(OutgoingRequest::new(request)).await?.response;
        let (parts, body) = response.into_parts();
        let limited = http_body_util::Limited::new(body, MAX_RESPONSE);
        let body = limited.collect().await?.to_bytes();
        Ok(Response::from_parts(parts, body))
    }
}
