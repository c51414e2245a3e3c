//! Implementations of 0.3's `bindgen!`-generated host traits. They only look
//! resources up in the table, delegate and convert.

use wasi_http_core::{Direction, ErrorCode, FieldError, Fields, HostRequestOptions, Timeout};
use wasmtime::component::{Access, Accessor, FutureReader, Resource, StreamReader};

use super::bindings::http::types::{
    self, ErrorCode as GuestCode, HeaderError, Method, RequestOptionsError, Scheme,
};
use super::body::{self as p3body, GuestTrailers, Transmission};
use super::resources::{Body, Destination};
use super::{HostRequest, HostResponse};
use crate::{HasHttp, HttpError, WasiHttpCtxView, WasiHttpView};

type Res<T> = wasmtime::Result<T>;

impl From<FieldError> for HeaderError {
    fn from(e: FieldError) -> Self {
        match e {
            FieldError::InvalidSyntax => HeaderError::InvalidSyntax,
            FieldError::Forbidden => HeaderError::Forbidden,
            FieldError::Immutable => HeaderError::Immutable,
            FieldError::SizeExceeded => HeaderError::SizeExceeded,
            _ => HeaderError::Other(Some(e.to_string())),
        }
    }
}

impl types::Host for WasiHttpCtxView<'_> {
    fn convert_error_code(&mut self, err: HttpError) -> wasmtime::Result<GuestCode> {
        err.into_guest()
    }
}

// ---------------------------------------------------------------------------------
// fields

impl types::HostFields for WasiHttpCtxView<'_> {
    fn new(&mut self) -> Res<Resource<Fields>> {
        Ok(self.table.push(Fields::new_mutable())?)
    }

    fn from_list(
        &mut self,
        entries: Vec<(String, Vec<u8>)>,
    ) -> Res<Result<Resource<Fields>, HeaderError>> {
        match Fields::from_list(entries, &self.ctx.limits, &*self.ctx.hooks) {
            Ok(fields) => Ok(Ok(self.table.push(fields)?)),
            Err(e) => Ok(Err(e.into())),
        }
    }

    fn get(&mut self, this: Resource<Fields>, name: String) -> Res<Vec<Vec<u8>>> {
        Ok(self.table.get(&this)?.get(&name))
    }

    fn has(&mut self, this: Resource<Fields>, name: String) -> Res<bool> {
        Ok(self.table.get(&this)?.has(&name))
    }

    fn set(
        &mut self,
        this: Resource<Fields>,
        name: String,
        values: Vec<Vec<u8>>,
    ) -> Res<Result<(), HeaderError>> {
        let (limits, hooks) = (&self.ctx.limits, &*self.ctx.hooks);
        let fields = self.table.get_mut(&this)?;
        Ok(fields.set(&name, values, limits, hooks).map_err(Into::into))
    }

    fn delete(&mut self, this: Resource<Fields>, name: String) -> Res<Result<(), HeaderError>> {
        let hooks = &*self.ctx.hooks;
        let fields = self.table.get_mut(&this)?;
        Ok(fields.delete(&name, hooks).map(drop).map_err(Into::into))
    }

    fn get_and_delete(
        &mut self,
        this: Resource<Fields>,
        name: String,
    ) -> Res<Result<Vec<Vec<u8>>, HeaderError>> {
        let hooks = &*self.ctx.hooks;
        let fields = self.table.get_mut(&this)?;
        Ok(fields.delete(&name, hooks).map_err(Into::into))
    }

    fn append(
        &mut self,
        this: Resource<Fields>,
        name: String,
        value: Vec<u8>,
    ) -> Res<Result<(), HeaderError>> {
        let (limits, hooks) = (&self.ctx.limits, &*self.ctx.hooks);
        let fields = self.table.get_mut(&this)?;
        Ok(fields
            .append(&name, value, limits, hooks)
            .map_err(Into::into))
    }

    fn copy_all(&mut self, this: Resource<Fields>) -> Res<Vec<(String, Vec<u8>)>> {
        Ok(self.table.get(&this)?.entries())
    }

    fn clone(&mut self, this: Resource<Fields>) -> Res<Resource<Fields>> {
        let copy = self.table.get(&this)?.mutable_copy();
        Ok(self.table.push(copy)?)
    }

    fn drop(&mut self, this: Resource<Fields>) -> Res<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// request

impl<T: WasiHttpView + 'static> types::HostRequestWithStore<T> for HasHttp {
    fn new(
        mut host: Access<T, Self>,
        headers: Resource<Fields>,
        contents: Option<StreamReader<u8>>,
        trailers: FutureReader<GuestTrailers>,
        options: Option<Resource<HostRequestOptions>>,
    ) -> Res<(Resource<HostRequest>, FutureReader<Result<(), GuestCode>>)> {
        let getter = host.getter();
        let view = host.get();
        let headers = view.table.delete(headers)?;
        let options = match options {
            // The request keeps the options as they are now, unchangeable.
            Some(options) => Some(view.table.delete(options)?.immutable_copy()),
            None => None,
        };
        let limits = view.ctx.limits.clone();
        let channel = p3body::pipe_guest_body(
            &mut host,
            getter,
            contents,
            trailers,
            headers.map(),
            &limits,
            Direction::Request,
        )?;
        let (sent, rx) = Transmission::new();
        let request = HostRequest {
            method: http::Method::GET,
            scheme: None,
            authority: None,
            path_with_query: None,
            headers,
            options,
            body: Some(Body::written(channel, sent)),
        };
        let request = host.get().table.push(request)?;
        let transmitted = p3body::transmission_future(&mut host, rx)?;
        Ok((request, transmitted))
    }

    fn consume_body(
        mut host: Access<T, Self>,
        this: Resource<HostRequest>,
        res: FutureReader<Result<(), GuestCode>>,
    ) -> Res<(StreamReader<u8>, FutureReader<GuestTrailers>)> {
        let getter = host.getter();
        let view = host.get();
        let request = view.table.delete(this)?;
        let limits = view.ctx.limits.clone();
        consume(
            &mut host,
            getter,
            request.body,
            &limits,
            Direction::Request,
            res,
        )
    }
}

/// A message's body as a stream and trailers future for the guest; a message
/// without one (already consumed) gives an empty stream and no trailers.
fn consume<T: WasiHttpView + 'static>(
    host: &mut Access<T, HasHttp>,
    getter: super::body::Getter<T>,
    body: Option<Body>,
    limits: &wasi_http_core::Limits,
    direction: Direction,
    res: FutureReader<Result<(), GuestCode>>,
) -> Res<(StreamReader<u8>, FutureReader<GuestTrailers>)> {
    let (body, between_bytes) = match body {
        Some(body) => (body.body, body.between_bytes),
        None => (wasi_http_core::body::empty(), None),
    };
    p3body::offer_body(host, getter, body, between_bytes, limits, direction, res)
}

impl types::HostRequest for WasiHttpCtxView<'_> {
    fn get_method(&mut self, this: Resource<HostRequest>) -> Res<Method> {
        Ok(Method::from_http(&self.table.get(&this)?.method))
    }

    fn set_method(&mut self, this: Resource<HostRequest>, method: Method) -> Res<Result<(), ()>> {
        match method.to_http() {
            Some(method) => {
                self.table.get_mut(&this)?.method = method;
                Ok(Ok(()))
            }
            None => Ok(Err(())),
        }
    }

    fn get_path_with_query(&mut self, this: Resource<HostRequest>) -> Res<Option<String>> {
        Ok(self.table.get(&this)?.path_with_query.clone())
    }

    fn set_path_with_query(
        &mut self,
        this: Resource<HostRequest>,
        path: Option<String>,
    ) -> Res<Result<(), ()>> {
        if path
            .as_deref()
            .is_some_and(|p| !wasi_http_core::uri::valid_path_with_query(p))
        {
            return Ok(Err(()));
        }
        self.table.get_mut(&this)?.path_with_query = path;
        Ok(Ok(()))
    }

    fn get_scheme(&mut self, this: Resource<HostRequest>) -> Res<Option<Scheme>> {
        Ok(self
            .table
            .get(&this)?
            .scheme
            .as_ref()
            .map(Scheme::from_http))
    }

    fn set_scheme(
        &mut self,
        this: Resource<HostRequest>,
        scheme: Option<Scheme>,
    ) -> Res<Result<(), ()>> {
        let scheme = match scheme {
            Some(scheme) => match scheme.to_http() {
                Some(scheme) => Some(scheme),
                None => return Ok(Err(())),
            },
            None => None,
        };
        self.table.get_mut(&this)?.scheme = scheme;
        Ok(Ok(()))
    }

    fn get_authority(&mut self, this: Resource<HostRequest>) -> Res<Option<String>> {
        Ok(self.table.get(&this)?.authority.clone())
    }

    fn set_authority(
        &mut self,
        this: Resource<HostRequest>,
        authority: Option<String>,
    ) -> Res<Result<(), ()>> {
        if authority
            .as_deref()
            .is_some_and(|a| !wasi_http_core::uri::valid_authority(a))
        {
            return Ok(Err(()));
        }
        self.table.get_mut(&this)?.authority = authority;
        Ok(Ok(()))
    }

    fn get_options(
        &mut self,
        this: Resource<HostRequest>,
    ) -> Res<Option<Resource<HostRequestOptions>>> {
        match &self.table.get(&this)?.options {
            Some(options) => {
                let copy = options.immutable_copy();
                Ok(Some(self.table.push(copy)?))
            }
            None => Ok(None),
        }
    }

    fn get_headers(&mut self, this: Resource<HostRequest>) -> Res<Resource<Fields>> {
        let headers = self.table.get(&this)?.headers.immutable_copy();
        Ok(self.table.push(headers)?)
    }

    fn drop(&mut self, this: Resource<HostRequest>) -> Res<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// request-options

fn options_error(e: wasi_http_core::OptionsError) -> RequestOptionsError {
    match e {
        wasi_http_core::OptionsError::Immutable => RequestOptionsError::Immutable,
        _ => RequestOptionsError::Other(None),
    }
}

impl WasiHttpCtxView<'_> {
    fn set_timeout(
        &mut self,
        this: Resource<HostRequestOptions>,
        which: Timeout,
        nanos: Option<u64>,
    ) -> Res<Result<(), RequestOptionsError>> {
        let options = self.table.get_mut(&this)?;
        Ok(options.set(which, nanos).map_err(options_error))
    }
}

impl types::HostRequestOptions for WasiHttpCtxView<'_> {
    fn new(&mut self) -> Res<Resource<HostRequestOptions>> {
        Ok(self.table.push(HostRequestOptions::default())?)
    }

    fn get_connect_timeout(&mut self, this: Resource<HostRequestOptions>) -> Res<Option<u64>> {
        Ok(self.table.get_mut(&this)?.get(Timeout::Connect))
    }

    fn set_connect_timeout(
        &mut self,
        this: Resource<HostRequestOptions>,
        nanos: Option<u64>,
    ) -> Res<Result<(), RequestOptionsError>> {
        self.set_timeout(this, Timeout::Connect, nanos)
    }

    fn get_first_byte_timeout(&mut self, this: Resource<HostRequestOptions>) -> Res<Option<u64>> {
        Ok(self.table.get_mut(&this)?.get(Timeout::FirstByte))
    }

    fn set_first_byte_timeout(
        &mut self,
        this: Resource<HostRequestOptions>,
        nanos: Option<u64>,
    ) -> Res<Result<(), RequestOptionsError>> {
        self.set_timeout(this, Timeout::FirstByte, nanos)
    }

    fn get_between_bytes_timeout(
        &mut self,
        this: Resource<HostRequestOptions>,
    ) -> Res<Option<u64>> {
        Ok(self.table.get_mut(&this)?.get(Timeout::BetweenBytes))
    }

    fn set_between_bytes_timeout(
        &mut self,
        this: Resource<HostRequestOptions>,
        nanos: Option<u64>,
    ) -> Res<Result<(), RequestOptionsError>> {
        self.set_timeout(this, Timeout::BetweenBytes, nanos)
    }

    fn clone(&mut self, this: Resource<HostRequestOptions>) -> Res<Resource<HostRequestOptions>> {
        let copy = self.table.get(&this)?.mutable_copy();
        Ok(self.table.push(copy)?)
    }

    fn drop(&mut self, this: Resource<HostRequestOptions>) -> Res<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// response

impl<T: WasiHttpView + 'static> types::HostResponseWithStore<T> for HasHttp {
    fn new(
        mut host: Access<T, Self>,
        headers: Resource<Fields>,
        contents: Option<StreamReader<u8>>,
        trailers: FutureReader<GuestTrailers>,
    ) -> Res<(Resource<HostResponse>, FutureReader<Result<(), GuestCode>>)> {
        let getter = host.getter();
        let view = host.get();
        let headers = view.table.delete(headers)?;
        let limits = view.ctx.limits.clone();
        let channel = p3body::pipe_guest_body(
            &mut host,
            getter,
            contents,
            trailers,
            headers.map(),
            &limits,
            Direction::Response,
        )?;
        let (sent, rx) = Transmission::new();
        let response = HostResponse {
            status: http::StatusCode::OK,
            headers,
            body: Some(Body::written(channel, sent)),
        };
        let response = host.get().table.push(response)?;
        let transmitted = p3body::transmission_future(&mut host, rx)?;
        Ok((response, transmitted))
    }

    fn consume_body(
        mut host: Access<T, Self>,
        this: Resource<HostResponse>,
        res: FutureReader<Result<(), GuestCode>>,
    ) -> Res<(StreamReader<u8>, FutureReader<GuestTrailers>)> {
        let getter = host.getter();
        let view = host.get();
        let response = view.table.delete(this)?;
        let limits = view.ctx.limits.clone();
        consume(
            &mut host,
            getter,
            response.body,
            &limits,
            Direction::Response,
            res,
        )
    }
}

impl types::HostResponse for WasiHttpCtxView<'_> {
    fn get_status_code(&mut self, this: Resource<HostResponse>) -> Res<u16> {
        Ok(self.table.get(&this)?.status.as_u16())
    }

    fn set_status_code(
        &mut self,
        this: Resource<HostResponse>,
        status: u16,
    ) -> Res<Result<(), ()>> {
        // Any valid status (RFC 9110 §15: 100 to 599), as the WIT says; a 1xx one
        // is refused when the response is sent (it cannot be a final response).
        match http::StatusCode::from_u16(status)
            .ok()
            .filter(|_| status <= 599)
        {
            Some(status) => {
                self.table.get_mut(&this)?.status = status;
                Ok(Ok(()))
            }
            None => Ok(Err(())),
        }
    }

    fn get_headers(&mut self, this: Resource<HostResponse>) -> Res<Resource<Fields>> {
        let headers = self.table.get(&this)?.headers.immutable_copy();
        Ok(self.table.push(headers)?)
    }

    fn drop(&mut self, this: Resource<HostResponse>) -> Res<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// client

impl super::bindings::http::client::Host for WasiHttpCtxView<'_> {}

impl<T: WasiHttpView + Send + 'static> super::bindings::http::client::HostWithStore<T> for HasHttp {
    async fn send(
        accessor: &Accessor<T, Self>,
        request: Resource<HostRequest>,
    ) -> Result<Resource<HostResponse>, HttpError> {
        call(accessor, request, Destination::Network).await
    }
}

// ---------------------------------------------------------------------------------
// handler (a middleware's next handler)

impl super::bindings::http::handler::Host for WasiHttpCtxView<'_> {}

impl<T: WasiHttpView + Send + 'static> super::bindings::http::handler::HostWithStore<T>
    for HasHttp
{
    async fn handle(
        accessor: &Accessor<T, Self>,
        request: Resource<HostRequest>,
    ) -> Result<Resource<HostResponse>, HttpError> {
        call(accessor, request, Destination::Next).await
    }
}

/// A guest's request handed to the hooks, and their response handed back: the
/// same for both, so a middleware's next handler streams as the network does.
async fn call<T: WasiHttpView + Send + 'static>(
    accessor: &Accessor<T, HasHttp>,
    request: Resource<HostRequest>,
    to: Destination,
) -> Result<Resource<HostResponse>, HttpError> {
    let (outgoing, hooks, limits) = accessor.with(|mut access| {
        let view = access.get();
        let request = view.table.delete(request)?;
        view.ctx.started += 1;
        let hooks = view.ctx.hooks.clone();
        let limits = view.ctx.limits.clone();
        let mut outgoing = request.into_outgoing(&*hooks, to)?;
        outgoing.trace = view.ctx.trace.clone();
        outgoing.call_depth = view.ctx.call_depth;
        Ok::<_, HttpError>((outgoing, hooks, limits))
    })?;
    let response = match to {
        Destination::Network => {
            let span =
                tracing::debug_span!("outgoing-request", destination = %outgoing.request.uri());
            let _enter = span.enter();
            hooks.send_request(outgoing)?
        }
        Destination::Next => {
            let span = tracing::debug_span!("next-handler", path = %outgoing.request.uri().path());
            let _enter = span.enter();
            hooks.forward_request(outgoing)?
        }
    }
    .await?;
    let (parts, body) = response.response.into_parts();
    let headers = Fields::from_received(parts.headers, &limits)
        .map_err(|_| ErrorCode::HttpResponseHeaderSectionSize(None))?;
    let response =
        HostResponse::received(parts.status, headers, body, response.between_bytes_timeout);
    accessor.with(|mut access| Ok(access.get().table.push(response)?))
}
