//! `wasi-http`: glue between the command line and the `wasi-http-host` library.

use clap::{Parser, Subcommand};

/// jemalloc instead of the system allocator: a request makes about 48 allocations,
/// and glibc's malloc spent 8k instructions per reused-instance request on them
/// (jemalloc: 8% fewer instructions in all, 5% more requests per second over ten
/// alternating rounds, memory under load within the same spread; see
/// docs/performance.md). The library leaves the choice to its embedder.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A line on stderr; a closed stderr is not worth a panic (nor a server's life).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod app;
mod args;
mod calls;
mod compile;
mod component;
mod config_file;
mod fds;
mod listen;
mod logging;
mod precompiled;
mod reload;
mod run;
mod serve;

/// The demo component served when no COMPONENT is given (the project's hello guest).
const DEMO_COMPONENT: &[u8] = include_bytes!("../../../guests/wasm/hello.wasm");

#[derive(Parser)]
#[command(
    name = "wasi-http",
    version,
    about = "Serve and run wasi:http components (WASI 0.2 and 0.3)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// One value, parsed once: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Serve a wasi:http component (a WASI 0.3 wasi:http/service or a WASI 0.2
    /// wasi:http/proxy) over HTTP/1.1 and HTTP/2 (h2c, or TLS with
    /// --tls-cert/--tls-key).
    Serve(args::ServeArgs),
    /// Run a wasi:cli/command component (WASI 0.2 or 0.3) with wasi:http available
    /// for outgoing requests; exits with its exit code.
    Run(args::RunArgs),
    /// Compile a component ahead of time for this build and CPU, for `serve` and
    /// `run` with --allow-precompiled (a container image's component, say).
    Compile(args::CompileArgs),
}

fn main() -> std::process::ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let result = config_file::parse_cli(argv.clone()).and_then(|parsed| match parsed.cli.command {
        Command::Serve(args) => {
            // Before any thread (the logger's): it may set the environment.
            let inherited = listen::inherited(args.listen_fd)?;
            logging::init(args.log_format);
            serve::serve(args, parsed.app, argv, inherited)
                .map(|()| std::process::ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            logging::init(args.log_format);
            run::run(args)
        }
        Command::Compile(args) => {
            logging::init(logging::LogFormat::Text);
            compile::compile(args).map(|()| std::process::ExitCode::SUCCESS)
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            // The cause chain on one line; no backtrace for an operator's mistake.
            say!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
