use wasmtime::component::Resource;

use crate::bindings::http::types::{self, Method, Scheme};
use crate::body::{HostIncomingBody, HostOutgoingBody};
use crate::fields::HostFields;
use crate::request::{self as req, HostIncomingRequest, HostOutgoingRequest, HostRequestOptions};
use crate::WasiHttpCtxView;

type Res<T> = wasmtime::Result<T>;

impl types::HostIncomingRequest for WasiHttpCtxView<'_> {
    fn method(&mut self, this: Resource<HostIncomingRequest>) -> Res<Method> {
        Ok(req::from_http_method(&self.table.get(&this)?.method))
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
            .map(req::from_http_scheme))
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
        if req::to_http_method(&method).is_none() {
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
            .is_some_and(|p| !req::valid_path_with_query(p))
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
        if scheme
            .as_ref()
            .is_some_and(|s| req::to_http_scheme(s).is_none())
        {
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
            .is_some_and(|a| !req::valid_authority(a))
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

/// Nanoseconds, as the WIT's `duration`.
fn to_duration(ns: Option<u64>) -> Option<std::time::Duration> {
    ns.map(std::time::Duration::from_nanos)
}

fn from_duration(d: Option<std::time::Duration>) -> Option<u64> {
    d.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl types::HostRequestOptions for WasiHttpCtxView<'_> {
    fn new(&mut self) -> Res<Resource<HostRequestOptions>> {
        Ok(self.table.push(HostRequestOptions::default())?)
    }

    fn connect_timeout(&mut self, this: Resource<HostRequestOptions>) -> Res<Option<u64>> {
        Ok(from_duration(self.table.get(&this)?.connect_timeout))
    }

    fn set_connect_timeout(
        &mut self,
        this: Resource<HostRequestOptions>,
        ns: Option<u64>,
    ) -> Res<Result<(), ()>> {
        self.table.get_mut(&this)?.connect_timeout = to_duration(ns);
        Ok(Ok(()))
    }

    fn first_byte_timeout(&mut self, this: Resource<HostRequestOptions>) -> Res<Option<u64>> {
        Ok(from_duration(self.table.get(&this)?.first_byte_timeout))
    }

    fn set_first_byte_timeout(
        &mut self,
        this: Resource<HostRequestOptions>,
        ns: Option<u64>,
    ) -> Res<Result<(), ()>> {
        self.table.get_mut(&this)?.first_byte_timeout = to_duration(ns);
        Ok(Ok(()))
    }

    fn between_bytes_timeout(&mut self, this: Resource<HostRequestOptions>) -> Res<Option<u64>> {
        Ok(from_duration(self.table.get(&this)?.between_bytes_timeout))
    }

    fn set_between_bytes_timeout(
        &mut self,
        this: Resource<HostRequestOptions>,
        ns: Option<u64>,
    ) -> Res<Result<(), ()>> {
        self.table.get_mut(&this)?.between_bytes_timeout = to_duration(ns);
        Ok(Ok(()))
    }

    fn drop(&mut self, this: Resource<HostRequestOptions>) -> Res<()> {
        self.table.delete(this)?;
        Ok(())
    }
}
