use wasmtime::component::Resource;

use wasi_http_core::Fields as HostFields;

use crate::p2::bindings::http::types::{self, HeaderError};
use crate::WasiHttpCtxView;

type Res<T> = wasmtime::Result<T>;

impl types::HostFields for WasiHttpCtxView<'_> {
    fn new(&mut self) -> Res<Resource<HostFields>> {
        Ok(self.table.push(HostFields::new_mutable())?)
    }

    fn from_list(
        &mut self,
        entries: Vec<(String, Vec<u8>)>,
    ) -> Res<Result<Resource<HostFields>, HeaderError>> {
        match HostFields::from_list(entries, &self.ctx.limits, &*self.ctx.hooks) {
            Ok(fields) => Ok(Ok(self.table.push(fields)?)),
            Err(e) => Ok(Err(e.into())),
        }
    }

    fn get(&mut self, this: Resource<HostFields>, name: String) -> Res<Vec<Vec<u8>>> {
        Ok(self.table.get(&this)?.get(&name))
    }

    fn has(&mut self, this: Resource<HostFields>, name: String) -> Res<bool> {
        Ok(self.table.get(&this)?.has(&name))
    }

    fn set(
        &mut self,
        this: Resource<HostFields>,
        name: String,
        values: Vec<Vec<u8>>,
    ) -> Res<Result<(), HeaderError>> {
        let (limits, hooks) = (&self.ctx.limits, &*self.ctx.hooks);
        Ok(self
            .table
            .get_mut(&this)?
            .set(&name, values, limits, hooks)
            .map_err(Into::into))
    }

    fn delete(&mut self, this: Resource<HostFields>, name: String) -> Res<Result<(), HeaderError>> {
        let hooks = &*self.ctx.hooks;
        Ok(self
            .table
            .get_mut(&this)?
            .delete(&name, hooks)
            .map(drop)
            .map_err(Into::into))
    }

    fn append(
        &mut self,
        this: Resource<HostFields>,
        name: String,
        value: Vec<u8>,
    ) -> Res<Result<(), HeaderError>> {
        let (limits, hooks) = (&self.ctx.limits, &*self.ctx.hooks);
        Ok(self
            .table
            .get_mut(&this)?
            .append(&name, value, limits, hooks)
            .map_err(Into::into))
    }

    fn entries(&mut self, this: Resource<HostFields>) -> Res<Vec<(String, Vec<u8>)>> {
        Ok(self.table.get(&this)?.entries())
    }

    fn clone(&mut self, this: Resource<HostFields>) -> Res<Resource<HostFields>> {
        let copy = self.table.get(&this)?.mutable_copy();
        Ok(self.table.push(copy)?)
    }

    fn drop(&mut self, this: Resource<HostFields>) -> Res<()> {
        self.table.delete(this)?;
        Ok(())
    }
}
