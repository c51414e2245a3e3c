//! What both versions' services share: their settings, the store data of a guest
//! instance (WASI with nothing granted but the configured environment, HTTP,
//! limits, the request deadline, guest output), and how a store is made and
//! readied for a request.

mod guest_output;
// Only 0.2 reuse replays a request (a 0.3 instance is never on trial).
#[cfg(feature = "p2")]
pub(crate) mod replay;

pub use self::guest_output::GuestOutput;
pub(crate) use self::guest_output::{Budget, LogSink};

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasi_http_core::{Limits, WasiHttpHooks};
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Settings of a service (0.2's `p2::ProxyService`, 0.3's `p3::Service`).
#[derive(Clone)]
#[non_exhaustive]
pub struct ServiceConfig {
    /// `wasi:http` limits for each instance's store.
    pub limits: Limits,
    /// Policy hooks (outgoing requests, forbidden headers, schemes).
    pub hooks: Arc<dyn WasiHttpHooks>,
    /// Most linear memory one instance may grow to. `None`: no cap beyond wasm's.
    pub max_memory_bytes: Option<usize>,
    /// Longest a guest may work for one request; past it the client gets 504 (or a
    /// reset once the response has started) and the guest is stopped. Needs an
    /// engine made with epoch interruption ([`crate::new_engine`]).
    pub request_timeout: Option<Duration>,
    /// Where guests' stdout and stderr go. Default: log lines tagged with the request
    /// id, 64 KiB per request.
    pub guest_output: GuestOutput,
    /// Most resources (fields, bodies, streams, pollables, ...) one instance may
    /// hold at once; past it the guest traps. Bounds the host memory a guest can pin
    /// through handles (wasmtime's own default is a million). Default: 4096.
    pub max_resources: usize,
    /// Fuel (roughly, wasm instructions) each request's guest may burn; past it the
    /// guest traps and the client gets 500. Needs an engine made with
    /// [`crate::EngineConfig::fuel`]. Default: none (unlimited).
    pub fuel: Option<u64>,
    /// Reuse instances for later requests instead of a fresh one per request. For
    /// 0.2, opt in only for guests written for it (they see memory left by earlier
    /// requests). Default: none for 0.2 (a fresh instance per request);
    /// 0.3 services reuse by default, as the 0.3 world intends.
    pub instance_reuse: Option<InstanceReuse>,
    /// Environment variables every guest sees (`wasi:cli/environment`). Default:
    /// none.
    pub env: Vec<(String, String)>,
}

/// When a reused instance is retired: after `max_requests`, after any trap, and
/// when idle for `idle_timeout`. A 0.2 instance serves one request at a time; a
/// 0.3 instance up to `max_concurrent` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InstanceReuse {
    /// Requests one instance serves before it is retired.
    pub max_requests: u32,
    /// An instance unused for this long is retired. Default: 60 s.
    pub idle_timeout: Duration,
    /// 0.3 only: requests one instance serves at the same time; one more starts a
    /// new instance. Default: 16.
    pub max_concurrent: u32,
}

impl InstanceReuse {
    /// Reuse each instance for up to `max_requests` requests.
    pub fn new(max_requests: u32) -> Self {
        InstanceReuse {
            max_requests,
            idle_timeout: Duration::from_secs(60),
            max_concurrent: 16,
        }
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            limits: Limits::default(),
            hooks: crate::default_hooks(),
            max_memory_bytes: None,
            request_timeout: None,
            guest_output: GuestOutput::default(),
            max_resources: 4096,
            fuel: None,
            instance_reuse: None,
            env: Vec::new(),
        }
    }
}

/// Why a component cannot be served.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServiceError {
    /// The component imports something the host does not provide (named).
    Link(wasmtime::Error),
    /// The component does not export the handler of the service's version.
    NotAService(wasmtime::Error),
    /// The engine cannot run this version (a 0.3 component needs
    /// [`crate::EngineConfig::component_model_async`]).
    Engine(&'static str),
    /// Instantiating the component failed (its start function trapped, its
    /// memory or tables exceed the limits, ...).
    Instantiate(wasmtime::Error),
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceError::Link(e) => {
                let text = format!("{e:#}");
                write!(f, "component cannot be linked: {text}")?;
                // Say what is on offer, so the operator knows no flag will help
                // and what the guest must be rebuilt against instead.
                f.write_str(
                    "; provided are wasi:http@0.2.0-0.2.12 and @0.3.0 (types, outgoing-handler, \
                     client), and WASI 0.2 and 0.3 cli, clocks, random, filesystem and sockets \
                     (plus 0.2 io), linked with nothing granted; no flag adds other interfaces",
                )
            }
            ServiceError::NotAService(e) => write!(f, "{e:#}"),
            ServiceError::Engine(why) => f.write_str(why),
            ServiceError::Instantiate(e) => write!(
                f,
                "component cannot be instantiated: {e:#} (if it needs more memory, raise \
                 --max-memory / ServiceConfig::max_memory_bytes)"
            ),
        }
    }
}

impl std::error::Error for ServiceError {}

/// Store data for running a guest instance: WASI (nothing granted but the
/// configured environment), HTTP, limits, the deadline, guest output.
pub struct GuestState {
    wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    limits: StoreLimits,
    /// Past this the guest is stopped (the epoch callback traps it).
    pub(crate) deadline: Option<Instant>,
    pub(crate) output: Option<Arc<Budget>>,
    /// 0.3: tells the service when the guest has been computing without a break.
    pub(crate) compute: Option<Arc<Compute>>,
    /// Epoch ticks since the guest last yielded its thread.
    ticks: u32,
}

/// When an instance's guest has been running wasm for a while without returning
/// to its event loop: the epoch callback ticks it every [`crate::EPOCH_TICK`] of
/// wasm execution, so ticks that keep coming mean the guest computes, and ticks
/// that stop mean it returned. A 0.3 instance that computes cannot start another
/// request's work (its tasks take turns), so new requests go elsewhere.
#[derive(Debug)]
pub(crate) struct Compute {
    origin: Instant,
    /// Milliseconds since `origin`: the latest tick, and the first tick of the
    /// current run of ticks.
    last_tick: std::sync::atomic::AtomicU64,
    run_start: std::sync::atomic::AtomicU64,
}

impl Compute {
    /// A run of ticks at most this far apart is one stretch of computing.
    const GAP: Duration = Duration::from_millis(25);
    /// Computing this long without a break makes the instance busy.
    #[cfg(feature = "p3")]
    const BUSY: Duration = Duration::from_millis(30);

    #[cfg(feature = "p3")]
    pub(crate) fn new() -> Arc<Compute> {
        Arc::new(Compute {
            origin: Instant::now(),
            last_tick: std::sync::atomic::AtomicU64::new(0),
            run_start: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_millis()).unwrap_or(u64::MAX)
    }

    fn tick(&self, now: Instant) {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.millis(now);
        let last = self.last_tick.swap(now, Relaxed);
        if now.saturating_sub(last) > Self::GAP.as_millis() as u64 {
            self.run_start.store(now, Relaxed);
        }
    }

    /// Whether the guest is computing now, and has been for a while.
    #[cfg(feature = "p3")]
    pub(crate) fn is_busy(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.millis(Instant::now());
        let last = self.last_tick.load(Relaxed);
        let start = self.run_start.load(Relaxed);
        now.saturating_sub(last) <= Self::GAP.as_millis() as u64
            && last.saturating_sub(start) >= Self::BUSY.as_millis() as u64
    }
}

impl GuestState {
    /// State with the given WASI and HTTP contexts and no memory limit.
    pub fn new(wasi: WasiCtx, http: WasiHttpCtx) -> Self {
        GuestState {
            wasi,
            http,
            table: ResourceTable::new(),
            limits: StoreLimits::default(),
            deadline: None,
            output: None,
            compute: None,
            ticks: 0,
        }
    }
}

impl GuestState {
    /// The store's resource limits (give `Store::limiter` `|s| s.store_limits()`).
    pub fn store_limits(&mut self) -> &mut StoreLimits {
        &mut self.limits
    }

    /// Caps each linear memory at `bytes` (the guest sees allocation failure).
    pub fn set_max_memory(&mut self, bytes: usize) {
        self.limits = StoreLimitsBuilder::new().memory_size(bytes).build();
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for GuestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
        }
    }
}

/// A store for one instance of a service's component: limits, guest output, the
/// environment, and an epoch callback that yields every tick (so a busy guest
/// cannot hold a runtime thread) and traps once past the deadline.
/// A store to check that the component instantiates, as a request's would be
/// (limits, fuel).
pub(crate) fn check_store(engine: &Engine, config: &ServiceConfig) -> Store<GuestState> {
    let mut store = new_store(engine, config, &Arc::from("check"));
    store.set_epoch_deadline(1);
    if engine.get_consume_fuel() {
        // Fails only if the engine does not count fuel, checked just above.
        let _ = store.set_fuel(config.fuel.unwrap_or(u64::MAX));
    }
    store
}

pub(crate) fn new_store(
    engine: &Engine,
    config: &ServiceConfig,
    request_id: &Arc<str>,
) -> Store<GuestState> {
    let mut wasi = WasiCtx::builder();
    let mut budget = None;
    match config.guest_output {
        GuestOutput::Discard => {}
        GuestOutput::Inherit => {
            wasi.inherit_stdout().inherit_stderr();
        }
        GuestOutput::Log { max_bytes } => {
            budget = Some(Budget::new(request_id.clone(), max_bytes));
        }
    }
    if let Some(budget) = &budget {
        let (stdout, stderr) = LogSink::pair(budget);
        wasi.stdout(stdout).stderr(stderr);
    }
    if !config.env.is_empty() {
        wasi.envs(&config.env);
    }
    let http = WasiHttpCtx::new(config.limits.clone(), config.hooks.clone());
    let mut state = GuestState::new(wasi.build(), http);
    state.output = budget;
    state.table.set_max_capacity(config.max_resources);
    if let Some(max) = config.max_memory_bytes {
        state.limits = StoreLimitsBuilder::new().memory_size(max).build();
    }
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limits);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut ctx| {
        let now = Instant::now();
        let state = ctx.data();
        if let Some(compute) = &state.compute {
            compute.tick(now);
        }
        match state.deadline {
            Some(deadline) if now >= deadline => Err(wasmtime::Trap::Interrupt.into()),
            // tokio's yield lets the runtime poll for I/O before resuming the guest,
            // so connections sharing its worker are not kept waiting behind it.
            //
            // A guest that keeps computing yields every `SLICE_TICKS` ticks: often
            // enough that the other connections of its worker wait at most ~50 ms,
            // rarely enough that a typical request (a Python one computes ~5 ms)
            // runs to its end. Yielding at every tick let dozens of requests start
            // at once, each with an instance of its own: peak memory 5x higher
            // (componentize-py hello, fresh instances, 32 connections: 80 against
            // 386–421 MiB) for no gain in requests per second.
            _ => {
                let state = ctx.data_mut();
                state.ticks += 1;
                if state.ticks < SLICE_TICKS {
                    return Ok(UpdateDeadline::Continue(1));
                }
                state.ticks = 0;
                Ok(UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(tokio::task::yield_now()),
                ))
            }
        }
    });
    store
}

/// Epoch ticks of computing after which a guest yields its thread.
const SLICE_TICKS: u32 = 5;

/// Whether a guest's error is its deadline's trap.
pub(crate) fn is_interrupt(err: &wasmtime::Error) -> bool {
    matches!(
        err.downcast_ref::<wasmtime::Trap>(),
        Some(wasmtime::Trap::Interrupt)
    )
}
