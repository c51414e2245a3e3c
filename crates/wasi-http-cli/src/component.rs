//! Loading a component for `serve` or `run`: its kind (told before compiling), an
//! engine for its WASI version, and the compiled component (from the cache when it
//! is there), with progress lines while a large one compiles.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use wasi_http_cache::{CacheOutcome, ComponentCache, ComponentCacheConfig};
use wasi_http_host::{ComponentKind, EngineConfig};
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::args::CacheArgs;
use crate::precompiled;

/// What `bytes` (a component, or a file from `wasi-http compile`) is, before any
/// compiling; a precompiled file only with `allow_precompiled`.
pub(crate) fn kind_of(bytes: &[u8], name: &str, allow_precompiled: bool) -> Result<ComponentKind> {
    if let Some(trailer) = precompiled::trailer(bytes) {
        if !allow_precompiled {
            bail!(
                "{name} is precompiled code (from `wasi-http compile`): loading it runs its \
                 machine code with this process's rights, unchecked; pass \
                 --allow-precompiled if you trust the file"
            );
        }
        return Ok(trailer.with_context(|| name.to_owned())?.kind);
    }
    if precompiled::is_bare_artifact(bytes) {
        bail!(
            "{name} is compiled machine code without a wasi-http trailer (a file of \
             `wasmtime compile`, or a truncated one of `wasi-http compile`): precompile \
             with `wasi-http compile`, or serve the .wasm"
        );
    }
    wasi_http_host::detect(bytes).with_context(|| name.to_owned())
}

/// The engine for `kind` (built from `engine_config`) and the compiled component:
/// compiled (from the cache when it is there), or loaded from a file of
/// `wasi-http compile` (checked by [`kind_of`] before). With `verbose`, says what
/// it loads and how long it took.
pub(crate) fn load(
    bytes: &[u8],
    path: Option<&std::path::Path>,
    name: &str,
    kind: &ComponentKind,
    engine_config: EngineConfig,
    cache: &CacheArgs,
    verbose: bool,
) -> Result<(Engine, Component)> {
    let engine = engine(kind, engine_config.clone())?;
    let component = compile(
        &engine,
        bytes,
        path,
        name,
        kind,
        engine_config.fuel,
        cache,
        verbose,
    )?;
    Ok((engine, component))
}

/// An engine for components of `kind`'s WASI version.
pub(crate) fn engine(kind: &ComponentKind, mut engine_config: EngineConfig) -> Result<Engine> {
    kind.configure(&mut engine_config);
    let (engine, pooling) = wasi_http_host::new_engine(&engine_config)
        .map_err(anyhow::Error::from)
        .context("creating the engine")?;
    tracing::debug!(pooling, "engine ready");
    Ok(engine)
}

/// The component for `engine` (whose fuel setting is `fuel`): compiled (from the
/// cache when it is there), or loaded from a file of `wasi-http compile`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn compile(
    engine: &Engine,
    bytes: &[u8],
    path: Option<&std::path::Path>,
    name: &str,
    kind: &ComponentKind,
    fuel: bool,
    cache: &CacheArgs,
    verbose: bool,
) -> Result<Component> {
    let engine = engine.clone();
    if let Some(trailer) = precompiled::trailer(bytes) {
        let started = std::time::Instant::now();
        let trailer = trailer.with_context(|| name.to_owned())?;
        trailer.check(bytes).with_context(|| name.to_owned())?;
        if trailer.fuel != fuel {
            bail!(
                "{name} was compiled {} fuel metering: compile it again {} --fuel, as the \
                 server runs",
                if trailer.fuel { "with" } else { "without" },
                if fuel { "with" } else { "without" },
            );
        }
        let path = path.context("internal: a precompiled component without its file")?;
        let trust = wasi_http_cache::TrustedArtifact::danger_trust_the_source();
        let component = wasi_http_cache::load_precompiled_file(&engine, path, trust)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "{name} cannot be loaded by this build: compile it again with this \
                     `wasi-http compile` (same version, same --fuel)"
                )
            })?;
        if verbose {
            say!(
                "Loaded precompiled {name}: {} in {:.0?}",
                kind.describe(),
                started.elapsed()
            );
        }
        return Ok(component);
    }
    let cache = open_cache(cache);
    if !verbose {
        let (component, _) = compile_cached(&engine, cache.as_ref(), bytes)
            .with_context(|| format!("compiling {name}"))?;
        return Ok(component);
    }
    // Compiling a large component takes seconds the first time (cached
    // afterwards): say what is happening.
    say!("Loading {name}: {}...", kind.describe());
    let started = std::time::Instant::now();
    let ticker = Ticker::start(
        started,
        if cache.is_some() {
            "; later starts load it from the cache"
        } else {
            ""
        },
    );
    let loaded = compile_cached(&engine, cache.as_ref(), bytes).map_err(|e| {
        // The pooling allocator checks each memory against its slot size when
        // compiling: that is a limit of ours, not a broken component.
        if format!("{e:#}").contains("pooling allocator") {
            e.context(format!(
                "{name} needs more linear memory or tables than an instance slot holds: \
                 raise --max-memory (or serve with --no-pooling)"
            ))
        } else {
            e.context(format!("{name} is not a valid WebAssembly component"))
        }
    });
    drop(ticker);
    let (component, outcome) = loaded?;
    let how = match outcome {
        Some(CacheOutcome::Hit) => " (from the cache)",
        Some(CacheOutcome::Compiled) => " (compiled and cached)",
        _ => " (compiled)",
    };
    say!("Component ready in {:.0?}{how}", started.elapsed());
    Ok(component)
}

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("wasi-http"))
}

/// While a component compiles (seconds for a large one, on a first start), says
/// every few seconds that it still is. Stops when dropped.
struct Ticker(Option<std::sync::mpsc::Sender<()>>);

impl Ticker {
    const EVERY: Duration = Duration::from_secs(3);

    fn start(started: std::time::Instant, hint: &'static str) -> Ticker {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("compile-progress".into())
            .spawn(move || {
                // Ends when the sender is dropped (Disconnected).
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    rx.recv_timeout(Ticker::EVERY)
                {
                    say!("  compiling ({:.0?}{hint})...", started.elapsed());
                }
            });
        // Without the thread there is no progress line, nothing worse.
        Ticker(spawned.ok().map(|_| tx))
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.take();
    }
}

/// The compiled-component cache, unless turned off; one that cannot be used is a
/// warning (the server still starts, compiling every time).
fn open_cache(args: &CacheArgs) -> Option<ComponentCache> {
    if args.no_cache {
        return None;
    }
    let dir = args.cache_dir.clone().or_else(default_cache_dir)?;
    let mut config = ComponentCacheConfig::default();
    config.max_bytes = args.cache_max_size;
    match ComponentCache::open(dir, config) {
        Ok(cache) => Some(cache),
        Err(e) => {
            tracing::warn!("not caching compiled components: {e}");
            None
        }
    }
}

/// The component, and how the cache served it (`None`: no cache).
fn compile_cached(
    engine: &wasmtime::Engine,
    cache: Option<&ComponentCache>,
    bytes: &[u8],
) -> Result<(Component, Option<CacheOutcome>)> {
    let loaded = match cache {
        Some(cache) => cache
            .load(engine, bytes)
            .map(|(component, outcome)| (component, Some(outcome))),
        None => Component::new(engine, bytes).map(|component| (component, None)),
    };
    loaded.map_err(anyhow::Error::from)
}
