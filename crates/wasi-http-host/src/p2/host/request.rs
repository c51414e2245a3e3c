use wasmtime::component::Resource;

use wasi_http_core::{Fields as HostFields, HostRequestOptions, Timeout};

use crate::p2::bindings::http::types::{self, Method, Scheme};
use crate::p2::{HostIncomingBody, HostIncomingRequest, HostOutgoingBody, HostOutgoingRequest};
use crate::WasiHttpCtxView;

type Res<T> = wasmtime::Result<T>;

impl types::HostIncomingRequest for WasiHttpCtxView<'_> {
    fn method(&mut self, this: Resource<HostIncomingRequest>) -> Res<Method> {
        Ok(Method::from_http(&self.table.get(&this)?.method))
    }

    fn path_with_query(&mut self, this: Resource<HostIncomingRequest>) -> Res<Option<String>> {
        Ok(self.table.get(&this)?.path_with_query.clone())
    }

    fn scheme(&mut self, this: Resource<HostIncomingRequest>) -> Res<Option<Scheme>> {
        Ok(self
            .table
            .get(&this)?
            .scheme
            .as_ref()
            .map(Scheme::from_http))
    }

    fn authority(&mut self, this: Resource<HostIncomingRequest>) -> Res<Option<String>> {
        Ok(self.table.get(&this)?.authority.clone())
    }

    fn headers(&mut self, this: Resource<HostIncomingRequest>) -> Res<Resource<HostFields>> {
        let headers = self.table.get(&this)?.headers.immutable_copy();
        Ok(self.table.push(headers)?)
    }

    fn consume(
        &mut self,
        this: Resource<HostIncomingRequest>,
    ) -> Res<Result<Resource<HostIncomingBody>, ()>> {
        match self.table.get_mut(&this)?.body.take() {
            Some(body) => Ok(Ok(self.table.push(body)?)),
            None => Ok(Err(())),
        }
    }

    fn drop(&mut self, this: Resource<HostIncomingRequest>) -> Res<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl types::HostOutgoingRequest for WasiHttpCtxView<'_> {
    fn new(&mut self, headers: Resource<HostFields>) -> Res<Resource<HostOutgoingRequest>> {
        let headers = self.table.delete(headers)?;
        Ok(self.table.push(HostOutgoingRequest::new(headers))?)
    }

    fn body(
        &mut self,
        this: Resource<HostOutgoingRequest>,
    ) -> Res<Result<Resource<HostOutgoingBody>, ()>> {
        let limits = &self.ctx.limits;
        match self.table.get_mut(&this)?.take_body(limits) {
            Some(writer) => Ok(Ok(self.table.push(HostOutgoingBody::new(writer))?)),
            None => Ok(Err(())),
        }
    }

    fn method(&mut self, this: Resource<HostOutgoingRequest>) -> Res<Method> {
        Ok(self.table.get(&this)?.method.clone())
    }

    fn set_method(
        &mut self,
        this: Resource<HostOutgoingRequest>,
        method: Method,
    ) -> Res<Result<(), ()>> {
        if method.to_http().is_none() {
            return Ok(Err(()));
        }
        self.table.get_mut(&this)?.method = method;
        Ok(Ok(()))
    }

    fn path_with_query(&mut self, this: Resource<HostOutgoingRequest>) -> Res<Option<String>> {
        Ok(self.table.get(&this)?.path_with_query.clone())
    }

    fn set_path_with_query(
        &mut self,
        this: Resource<HostOutgoingRequest>,
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

    fn scheme(&mut self, this: Resource<HostOutgoingRequest>) -> Res<Option<Scheme>> {
        Ok(self.table.get(&this)?.scheme.clone())
    }

    fn set_scheme(
        &mut self,
        this: Resource<HostOutgoingRequest>,
        scheme: Option<Scheme>,
    ) -> Res<Result<(), ()>> {
        if scheme.as_ref().is_some_and(|s| s.to_http().is_none()) {
            return Ok(Err(()));
        }
        self.table.get_mut(&this)?.scheme = scheme;
        Ok(Ok(()))
    }

    fn authority(&mut self, this: Resource<HostOutgoingRequest>) -> Res<Option<String>> {
        Ok(self.table.get(&this)?.authority.clone())
    }

    fn set_authority(
        &mut self,
        this: Resource<HostOutgoingRequest>,
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

    fn headers(&mut self, this: Resource<HostOutgoingRequest>) -> Res<Resource<HostFields>> {
        let headers = self.table.get(&this)?.headers.immutable_copy();
        Ok(self.table.push(headers)?)
    }

    fn drop(&mut self, this: Resource<HostOutgoingRequest>) -> Res<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl types::HostRequestOptions for WasiHttpCtxView<'_> {
    fn new(&mut self) -> Res<Resource<HostRequestOptions>> {
        Ok(self.table.push(HostRequestOptions::default())?)
    }

    fn connect_timeout(&mut self, this: Resource<HostRequestOptions>) -> Res<Option<u64>> {
        Ok(self.table.get_mut(&this)?.get(Timeout::Connect))
    }

    fn set_connect_timeout(
        &mut self,
        this: Resource<HostRequestOptions>,
        ns: Option<u64>,
    ) -> Res<Result<(), ()>> {
        set(self, this, Timeout::Connect, ns)
    }

    fn first_byte_timeout(&mut self, this: Resource<HostRequestOptions>) -> Res<Option<u64>> {
        Ok(self.table.get_mut(&this)?.get(Timeout::FirstByte))
    }

    fn set_first_byte_timeout(
        &mut self,
        this: Resource<HostRequestOptions>,
        ns: Option<u64>,
    ) -> Res<Result<(), ()>> {
        set(self, this, Timeout::FirstByte, ns)
    }

    fn between_bytes_timeout(&mut self, this: Resource<HostRequestOptions>) -> Res<Option<u64>> {
        Ok(self.table.get_mut(&this)?.get(Timeout::BetweenBytes))
    }

    fn set_between_bytes_timeout(
        &mut self,
        this: Resource<HostRequestOptions>,
        ns: Option<u64>,
    ) -> Res<Result<(), ()>> {
        set(self, this, Timeout::BetweenBytes, ns)
    }

    fn drop(&mut self, this: Resource<HostRequestOptions>) -> Res<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

/// 0.2's options are never immutable; the error is for the shared type's sake.
fn set(
    view: &mut WasiHttpCtxView<'_>,
    this: Resource<HostRequestOptions>,
    which: Timeout,
    ns: Option<u64>,
) -> Res<Result<(), ()>> {
    Ok(view.table.get_mut(&this)?.set(which, ns).map_err(drop))
}
