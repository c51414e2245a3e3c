//! `wasi-http compile`: a component compiled ahead of time, in the format of
//! `precompiled`, written atomically.

use std::io::Write;

use anyhow::{Context, Result};
use wasi_http_host::EngineConfig;

use crate::args::CompileArgs;

pub(crate) fn compile(args: CompileArgs) -> Result<()> {
    let name = args.component.display().to_string();
    let bytes = std::fs::read(&args.component).with_context(|| format!("reading {name}"))?;
    let kind = crate::component::kind_of(&bytes, &name, false)?;
    let mut engine_config = EngineConfig::default();
    // Compiling needs no instance slots.
    engine_config.pooling = false;
    engine_config.fuel = args.fuel;
    engine_config.portable = args.portable;
    kind.configure(&mut engine_config);
    let (engine, _) = wasi_http_host::new_engine(&engine_config)
        .map_err(anyhow::Error::from)
        .context("creating the engine")?;
    let started = std::time::Instant::now();
    say!("Compiling {name}: {}...", kind.describe());
    let artifact = engine
        .precompile_component(&bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{name} is not a valid WebAssembly component"))?;
    let file = crate::precompiled::write(&kind, args.fuel, &artifact)?;
    // A complete file or none: written beside the target, then renamed.
    let out = &args.output;
    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        out.file_name()
            .map_or("out".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(&file)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, out)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", out.display()));
    }
    say!(
        "Compiled {name} to {} ({:.1} MiB) in {:.1?}; serve it with --allow-precompiled",
        out.display(),
        file.len() as f64 / (1 << 20) as f64,
        started.elapsed()
    );
    Ok(())
}
