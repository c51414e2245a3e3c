//! The per-store HTTP context and the view trait embedders implement; the same for
//! both WASI versions.

use std::sync::Arc;

use wasmtime::component::ResourceTable;

use wasi_http_core::{Limits, WasiHttpHooks};

/// Per-store state of the `wasi:http` host: the limits and the policy hooks.
///
/// Cheap to create: a fresh one per request costs a few word copies and a
/// reference-count increment.
#[derive(Clone)]
pub struct WasiHttpCtx {
    pub(crate) limits: Limits,
    pub(crate) hooks: Arc<dyn WasiHttpHooks>,
    /// Outgoing requests the guest has started (handed to the hooks): a failed
    /// attempt that started none can be served again without repeating an effect.
    pub(crate) started: u64,
    /// How the guest answered its current request (0.2: set by
    /// `response-outparam.set`; the service resets it per request).
    #[cfg_attr(not(feature = "p2"), allow(dead_code))]
    pub(crate) answer: Answer,
    /// The tracing of the request the guest is handling (its handling span's
    /// context): outgoing requests continue it. 0.3: the latest request of the
    /// instance, which serves several at once.
    pub(crate) trace: Option<wasi_http_core::RequestTrace>,
    /// The call depth of the request the guest is handling (0.3: of the
    /// instance's latest request), given to its outgoing requests.
    pub(crate) call_depth: u32,
}

/// How a guest answered a request, as its service sees it when the call ends.
#[cfg_attr(not(feature = "p2"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Answer {
    /// Not (yet): no response was set.
    #[default]
    None,
    /// A response below 500.
    Fine,
    /// A 5xx response, or an error code.
    Failed,
}

impl Default for WasiHttpCtx {
    /// Default limits; outgoing requests go through a default
    /// `wasi_http_client::Client` (feature `client`), or are refused without it.
    fn default() -> Self {
        WasiHttpCtx::new(Limits::default(), crate::default_hooks())
    }
}

impl std::fmt::Debug for WasiHttpCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasiHttpCtx")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl WasiHttpCtx {
    /// A context with the given limits and hooks.
    pub fn new(limits: Limits, hooks: Arc<dyn WasiHttpHooks>) -> Self {
        WasiHttpCtx {
            limits: limits.normalized(),
            hooks,
            started: 0,
            answer: Answer::None,
            trace: None,
            call_depth: 0,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The hooks in force.
    pub fn hooks(&self) -> &Arc<dyn WasiHttpHooks> {
        &self.hooks
    }
}

/// What the host needs from a store's data: its HTTP context and the resource table
/// it shares with the rest of WASI.
pub trait WasiHttpView: Send {
    /// Borrows the HTTP context and the resource table.
    fn http(&mut self) -> WasiHttpCtxView<'_>;
}

/// A borrow of a store's HTTP context and resource table; the generated host traits
/// of both versions are implemented on it.
pub struct WasiHttpCtxView<'a> {
    /// The HTTP context.
    pub ctx: &'a mut WasiHttpCtx,
    /// The store's resource table (shared with `wasmtime-wasi`).
    pub table: &'a mut ResourceTable,
}

impl<'a> WasiHttpCtxView<'a> {
    /// A view over a context and a table.
    pub fn new(ctx: &'a mut WasiHttpCtx, table: &'a mut ResourceTable) -> Self {
        WasiHttpCtxView { ctx, table }
    }
}
