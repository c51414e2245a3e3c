use wasmtime::component::Resource;
use wasmtime_wasi::p2::DynPollable;

use wasi_http_core::Fields as HostFields;

use crate::p2::bindings::http::types::{self, ErrorCode};
use crate::p2::{
    HostFutureIncomingResponse, HostIncomingBody, HostIncomingResponse, HostOutgoingBody,
    HostOutgoingResponse, HostResponseOutparam,
};
use crate::{HttpError, WasiHttpCtxView};

type Res<T> = wasmtime::Result<T>;

impl types::HostOutgoingResponse for WasiHttpCtxView<'_> {
    fn new(&mut self, headers: Resource<HostFields>) -> Res<Resource<HostOutgoingResponse>> {
        let headers = self.table.delete(headers)?;
        Ok(self.table.push(HostOutgoingResponse::new(headers))?)
    }

    fn status_code(&mut self, this: Resource<HostOutgoingResponse>) -> Res<u16> {
        Ok(self.table.get(&this)?.status.as_u16())
    }

    fn set_status_code(
        &mut self,
        this: Resource<HostOutgoingResponse>,
        status: u16,
    ) -> Res<Result<(), ()>> {
        match crate::p2::resources::final_status(status) {
            Some(status) => {
                self.table.get_mut(&this)?.status = status;
                Ok(Ok(()))
            }
            None => Ok(Err(())),
        }
    }

    fn headers(&mut self, this: Resource<HostOutgoingResponse>) -> Res<Resource<HostFields>> {
        let headers = self.table.get(&this)?.headers.immutable_copy();
        Ok(self.table.push(headers)?)
    }

    fn body(
        &mut self,
        this: Resource<HostOutgoingResponse>,
    ) -> Res<Result<Resource<HostOutgoingBody>, ()>> {
        let limits = &self.ctx.limits;
        match self.table.get_mut(&this)?.take_body(limits) {
            Some(writer) => Ok(Ok(self.table.push(HostOutgoingBody::new(writer))?)),
            None => Ok(Err(())),
        }
    }

    fn drop(&mut self, this: Resource<HostOutgoingResponse>) -> Res<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl types::HostResponseOutparam for WasiHttpCtxView<'_> {
    fn set(
        &mut self,
        param: Resource<HostResponseOutparam>,
        response: Result<Resource<HostOutgoingResponse>, ErrorCode>,
    ) -> Res<()> {
        let param = self.table.delete(param)?;
        let response = match response {
            Ok(r) => Ok(self.table.delete(r)?.into_http(&self.ctx.limits)),
            Err(code) => Err(code.into()),
        };
        self.ctx.answer = match &response {
            Ok(r) if !r.status().is_server_error() => crate::ctx::Answer::Fine,
            _ => crate::ctx::Answer::Failed,
        };
        param.deliver(response);
        Ok(())
    }

    fn send_informational(
        &mut self,
        this: Resource<HostResponseOutparam>,
        status: u16,
        headers: Resource<HostFields>,
    ) -> Result<(), HttpError> {
        let headers = self.table.delete(headers)?;
        self.table.get(&this)?.send_informational(status, headers)
    }

    fn drop(&mut self, this: Resource<HostResponseOutparam>) -> Res<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl types::HostIncomingResponse for WasiHttpCtxView<'_> {
    fn status(&mut self, this: Resource<HostIncomingResponse>) -> Res<u16> {
        Ok(self.table.get(&this)?.status)
    }

    fn headers(&mut self, this: Resource<HostIncomingResponse>) -> Res<Resource<HostFields>> {
        let headers = self.table.get(&this)?.headers.immutable_copy();
        Ok(self.table.push(headers)?)
    }

    fn consume(
        &mut self,
        this: Resource<HostIncomingResponse>,
    ) -> Res<Result<Resource<HostIncomingBody>, ()>> {
        match self.table.get_mut(&this)?.body.take() {
            Some(body) => Ok(Ok(self.table.push(body)?)),
            None => Ok(Err(())),
        }
    }

    fn drop(&mut self, this: Resource<HostIncomingResponse>) -> Res<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl types::HostFutureIncomingResponse for WasiHttpCtxView<'_> {
    fn subscribe(
        &mut self,
        this: Resource<HostFutureIncomingResponse>,
    ) -> Res<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(self.table, this)
    }

    #[allow(clippy::type_complexity)]
    fn get(
        &mut self,
        this: Resource<HostFutureIncomingResponse>,
    ) -> Res<Option<Result<Result<Resource<HostIncomingResponse>, ErrorCode>, ()>>> {
        Ok(match self.table.get_mut(&this)?.take() {
            None => None,
            Some(Err(())) => Some(Err(())),
            Some(Ok(Err(code))) => Some(Ok(Err(code.into()))),
            Some(Ok(Ok(response))) => {
                match crate::p2::outgoing::into_guest_response(self.ctx, response) {
                    Ok(response) => Some(Ok(Ok(self.table.push(response)?))),
                    Err(code) => Some(Ok(Err(code.into()))),
                }
            }
        })
    }

    fn drop(&mut self, this: Resource<HostFutureIncomingResponse>) -> Res<()> {
        self.table.delete(this)?;
        Ok(())
    }
}
