//! The per-store HTTP context, the view trait embedders implement, and the hooks that
//! let an embedder replace policy (outgoing sending, forbidden headers, schemes).

use std::sync::Arc;

use wasmtime::component::ResourceTable;

use crate::client::{Client, OutgoingRequest, ResponseFuture};
use crate::error_code::ErrorCode;
use crate::limits::Limits;

/// Policy hooks consulted by the host. Every method has a production default; an
/// embedder overrides only what it needs.
pub trait WasiHttpHooks: Send + Sync {
    /// Sends an outgoing request on behalf of the guest (`outgoing-handler.handle`).
    ///
    /// The default sends it with the host's [`Client`]. Returning `Err` hands the
    /// error code to the guest as `handle`'s result; the returned future is driven
    /// by the host in the background, whether or not the guest polls it.
    fn send_request(&self, request: OutgoingRequest) -> Result<ResponseFuture, ErrorCode> {
        Ok(self.client().send(request))
    }

    /// The client used by the default [`send_request`](Self::send_request).
    fn client(&self) -> &Client;

    /// Whether a guest may not set this header on `fields` it creates. The default
    /// forbids the connection-level headers the host manages itself
    /// ([`DEFAULT_FORBIDDEN_HEADERS`]).
    fn is_forbidden_header(&self, name: &http::HeaderName) -> bool {
        DEFAULT_FORBIDDEN_HEADERS.contains(&name.as_str())
    }

    /// Whether an outgoing request may use this scheme. The default allows `http`
    /// and `https`; anything else fails `handle` with `HTTP-protocol-error`.
    fn is_supported_scheme(&self, scheme: &http::uri::Scheme) -> bool {
        *scheme == http::uri::Scheme::HTTP || *scheme == http::uri::Scheme::HTTPS
    }
}

/// Headers that describe the connection rather than the message; the host owns them.
pub const DEFAULT_FORBIDDEN_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "host",
    "http2-settings",
    "te",
];

/// The default hooks: the default policy with a shared [`Client`].
#[derive(Debug, Clone, Default)]
pub struct DefaultHooks {
    client: Client,
}

impl DefaultHooks {
    /// Default policy, sending outgoing requests through `client`.
    pub fn new(client: Client) -> Self {
        DefaultHooks { client }
    }
}

impl WasiHttpHooks for DefaultHooks {
    fn client(&self) -> &Client {
        &self.client
    }
}

/// Per-store state of the `wasi:http` host.
///
/// Cheap to create: it holds the limits and a shared handle to the hooks, so a fresh
/// one per request costs two word copies and a reference-count increment.
#[derive(Clone)]
pub struct WasiHttpCtx {
    pub(crate) limits: Limits,
    pub(crate) hooks: Arc<dyn WasiHttpHooks>,
}

impl Default for WasiHttpCtx {
    fn default() -> Self {
        WasiHttpCtx::new(Limits::default(), Arc::new(DefaultHooks::default()))
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
/// are implemented on it.
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
