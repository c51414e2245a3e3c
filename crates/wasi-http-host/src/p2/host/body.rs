use wasmtime::component::Resource;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable};

use wasi_http_core::Fields as HostFields;

use crate::p2::bindings::http::types::{self, ErrorCode};
use crate::p2::{HostFutureTrailers, HostIncomingBody, HostOutgoingBody};
use crate::{HttpError, WasiHttpCtxView};

type Res<T> = wasmtime::Result<T>;

impl types::HostIncomingBody for WasiHttpCtxView<'_> {
    fn stream(
        &mut self,
        this: Resource<HostIncomingBody>,
    ) -> Res<Result<Resource<DynInputStream>, ()>> {
        match self.table.get_mut(&this)?.take_stream() {
            Some(stream) => {
                let stream: DynInputStream = Box::new(stream);
                Ok(Ok(self.table.push_child(stream, &this)?))
            }
            None => Ok(Err(())),
        }
    }

    fn finish(&mut self, this: Resource<HostIncomingBody>) -> Res<Resource<HostFutureTrailers>> {
        let trailers = self.table.delete(this)?.finish()?;
        Ok(self.table.push(trailers)?)
    }

    fn drop(&mut self, this: Resource<HostIncomingBody>) -> Res<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl types::HostOutgoingBody for WasiHttpCtxView<'_> {
    fn write(
        &mut self,
        this: Resource<HostOutgoingBody>,
    ) -> Res<Result<Resource<DynOutputStream>, ()>> {
        match self.table.get_mut(&this)?.take_stream() {
            Some(stream) => {
                let stream: DynOutputStream = Box::new(stream);
                Ok(Ok(self.table.push_child(stream, &this)?))
            }
            None => Ok(Err(())),
        }
    }

    fn finish(
        &mut self,
        this: Resource<HostOutgoingBody>,
        trailers: Option<Resource<HostFields>>,
    ) -> Result<(), HttpError> {
        let body = self.table.delete(this)?;
        let trailers = match trailers {
            Some(t) => Some(self.table.delete(t)?),
            None => None,
        };
        body.finish(trailers)
    }

    fn drop(&mut self, this: Resource<HostOutgoingBody>) -> Res<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl types::HostFutureTrailers for WasiHttpCtxView<'_> {
    fn subscribe(&mut self, this: Resource<HostFutureTrailers>) -> Res<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(self.table, this)
    }

    #[allow(clippy::type_complexity)]
    fn get(
        &mut self,
        this: Resource<HostFutureTrailers>,
    ) -> Res<Option<Result<Result<Option<Resource<HostFields>>, ErrorCode>, ()>>> {
        Ok(match self.table.get_mut(&this)?.get() {
            None => None,
            Some(Err(())) => Some(Err(())),
            Some(Ok(Err(code))) => Some(Ok(Err(code.into()))),
            Some(Ok(Ok(None))) => Some(Ok(Ok(None))),
            Some(Ok(Ok(Some(fields)))) => Some(Ok(Ok(Some(self.table.push(fields)?)))),
        })
    }

    fn drop(&mut self, this: Resource<HostFutureTrailers>) -> Res<()> {
        self.table.delete(this)?;
        Ok(())
    }
}
