//! The engine a service runs on: async, epoch interruption ticked by a background
//! thread, the pooling allocator keeping memory resident, and the component model's
//! async ABI when the component is a WASI 0.3 one.

use std::time::Duration;

use wasmtime::Engine;

/// Settings for [`new_engine`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Use the pooling instance allocator (falls back to on-demand if the machine
    /// cannot reserve the address space).
    pub pooling: bool,
    /// Most concurrent instances with pooling.
    pub max_instances: u32,
    /// Largest linear memory with pooling (and the reservation per memory).
    pub max_memory_bytes: usize,
    /// With pooling, bytes of each linear memory (and table) left mapped when an
    /// instance ends and reset in place for the next one, instead of being unmapped.
    /// Unmapping costs a TLB shootdown on every core running the process, which
    /// dominates a fresh-instance-per-request server; pages kept cost RSS. Where the
    /// kernel has `PAGEMAP_SCAN` (Linux 6.7+) only pages the instance wrote are
    /// kept and reset, so the resident set follows what the component touches and
    /// this is only a ceiling. Default: 64 MiB with `PAGEMAP_SCAN` (a Python
    /// guest writes 4 to 16 MiB per instance), else 4 MiB (without it, this many
    /// bytes are zeroed whether touched or not, on every reset).
    pub keep_resident_bytes: usize,
    /// Map each memory's initial data copy-on-write from the compiled code instead
    /// of copying it in at instantiation. Off by default: every first write to a
    /// mapped page is a copy-on-write fault with a TLB shootdown (an interrupt to
    /// every core running the process, slow in a VM), and a guest that writes
    /// scattered pages (a Python interpreter) takes hundreds per instance, each
    /// instance again, since the pool can keep only a few scattered regions. Copied
    /// in, the data lands in pages the pool keeps resident, and a reused slot is
    /// reset with `memcpy` (measured on componentize-py's 0.3 hello: 0.05 faults
    /// per request instead of 5.6, 3x the requests per second; C guests equal).
    pub memory_init_cow: bool,
    /// Count wasm instructions ("fuel") so a service's fuel limit can cap guests.
    /// Costs some speed. Default: off.
    pub fuel: bool,
    /// The component model's async ABI (`stream`, `future`, concurrent calls):
    /// needed by WASI 0.3 components, which do not even parse without it. It routes
    /// every call through Wasmtime's concurrent event loop, which a 0.2 component
    /// pays for without using, so it is off by default: make the engine for the
    /// component's version ([`crate::ComponentKind::configure`] does).
    pub component_model_async: bool,
    /// Compile for this architecture's baseline CPU rather than the features of
    /// the CPU compiling (SSE2 only on x86-64): code that loads on any machine of
    /// the architecture and OS, for artifacts precompiled on one machine and run
    /// on others (a container image), at some cost in speed for float-heavy
    /// guests. Default: off (this CPU's features).
    pub portable: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            pooling: true,
            max_instances: 1000,
            max_memory_bytes: 4 << 30,
            keep_resident_bytes: if wasmtime::PoolingAllocationConfig::is_pagemap_scan_available() {
                64 << 20
            } else {
                4 << 20
            },
            memory_init_cow: false,
            fuel: false,
            component_model_async: false,
            portable: false,
        }
    }
}

/// How often the epoch ticks: the resolution of guest deadlines and the longest a
/// guest runs before yielding its thread to other requests.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Makes an engine for serving: async, epoch interruption (ticked by a background
/// thread every [`EPOCH_TICK`]), pooling allocator when the machine allows it.
/// Returns the engine and whether pooling is in use.
pub fn new_engine(config: &EngineConfig) -> wasmtime::Result<(Engine, bool)> {
    let mut base = wasmtime::Config::new();
    base.epoch_interruption(true);
    base.memory_init_cow(config.memory_init_cow);
    base.consume_fuel(config.fuel);
    if config.portable {
        // An explicit target turns off Cranelift's detection of this CPU's
        // features; only architecture and OS must then match where it loads.
        let triple = format!(
            "{}-unknown-{}",
            std::env::consts::ARCH,
            std::env::consts::OS
        );
        base.target(&triple)?;
    }
    #[cfg(feature = "p3")]
    {
        base.concurrency_support(config.component_model_async);
        base.wasm_component_model_async(config.component_model_async);
    }
    #[cfg(not(feature = "p3"))]
    if config.component_model_async {
        wasmtime::bail!("the component model's async ABI needs the `p3` feature of wasi-http-host");
    }
    let engine = if config.pooling {
        let mut pooled = base.clone();
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_component_instances(config.max_instances)
            .total_core_instances(config.max_instances.saturating_mul(4))
            .total_memories(config.max_instances.saturating_mul(2))
            .total_tables(config.max_instances.saturating_mul(4))
            .max_memory_size(config.max_memory_bytes)
            .linear_memory_keep_resident(config.keep_resident_bytes)
            .table_keep_resident(config.keep_resident_bytes.min(1 << 20))
            .pagemap_scan(wasmtime::Enabled::Auto);
        pooled.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        match Engine::new(&pooled) {
            Ok(engine) => Some(engine),
            Err(e) => {
                tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand allocation");
                None
            }
        }
    } else {
        None
    };
    let pooling = engine.is_some();
    let engine = match engine {
        Some(engine) => engine,
        None => Engine::new(&base)?,
    };
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasi-http-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
    Ok((engine, pooling))
}
