//! `wasi-http run`: a `wasi:cli/command` component (WASI 0.2 or 0.3) with
//! `wasi:http` for outgoing requests under the same outbound flags as `serve`,
//! stdio inherited, the given arguments and environment; its exit code is ours.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use wasi_http_client as client;
use wasi_http_host::{ComponentKind, EngineConfig, GuestState, Limits, WasiHttpCtx};
use wasmtime::component::Linker;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::WasiCtx;

use crate::args::RunArgs;

pub(crate) fn run(args: RunArgs) -> Result<ExitCode> {
    let name = args.component.display().to_string();
    let bytes = std::fs::read(&args.component).with_context(|| format!("reading {name}"))?;
    let kind = crate::component::kind_of(&bytes, &name, args.cache.allow_precompiled)?;
    let p3 = match &kind {
        ComponentKind::Command { p3, .. } => *p3,
        other => bail!(
            "{name} is a {} and exports no wasi:cli/run: serve it with `wasi-http serve`",
            other.describe()
        ),
    };
    let mut engine_config = EngineConfig::default();
    // One instance: no pool to reserve.
    engine_config.pooling = false;
    let (engine, component) = crate::component::load(
        &bytes,
        Some(&args.component),
        &name,
        &kind,
        engine_config,
        &args.cache,
        false,
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(async move {
        let client = client::Client::new(args.outbound.client_config()?);
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdio();
        let mut argv = vec![name.clone()];
        argv.extend(args.args.iter().cloned());
        wasi.args(&argv);
        wasi.envs(&args.guest_env.vars()?);
        let http = WasiHttpCtx::new(Limits::default(), Arc::new(client));
        let mut state = GuestState::new(wasi.build(), http);
        state.set_max_memory(args.max_memory);
        let mut store = Store::new(&engine, state);
        store.limiter(|s| s.store_limits());
        // The engine interrupts on epochs: yield on each, never stop.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
        let result = if p3 {
            let mut linker = Linker::new(&engine);
            wasi_http_host::p3::add_to_linker_with_p2(&mut linker)?;
            let command = wasmtime_wasi::p3::bindings::Command::instantiate_async(
                &mut store, &component, &linker,
            )
            .await
            .map_err(anyhow::Error::from)
            .with_context(|| format!("instantiating {name}"))?;
            store
                .run_concurrent(async |accessor| command.wasi_cli_run().call_run(accessor).await)
                .await
                .and_then(|r| r)
        } else {
            let mut linker = Linker::new(&engine);
            wasi_http_host::p2::add_to_linker_async_with_wasi(&mut linker)?;
            let command = wasmtime_wasi::p2::bindings::Command::instantiate_async(
                &mut store, &component, &linker,
            )
            .await
            .map_err(anyhow::Error::from)
            .with_context(|| format!("instantiating {name}"))?;
            command.wasi_cli_run().call_run(&mut store).await
        };
        Ok(exit_code(&name, result))
    })
}

/// The command's exit code: 0 for `ok`, 1 for `err`, the code of an explicit exit,
/// and 1 (with the trap on stderr) for a trap.
fn exit_code(name: &str, result: wasmtime::Result<Result<(), ()>>) -> ExitCode {
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(())) => ExitCode::FAILURE,
        Err(e) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
            Some(exit) => ExitCode::from(u8::try_from(exit.0).unwrap_or(1)),
            None => {
                say!("error: {name} trapped: {e:?}");
                ExitCode::FAILURE
            }
        },
    }
}
