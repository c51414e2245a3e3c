//! `serve --config FILE`: the file's settings become flags, and the command
//! line's flags override them, so both share one parser and one set of defaults.
//! A file with `[components.NAME]` tables describes an app: each component's
//! flags are the server-wide ones with its own settings in their place, parsed
//! by the same parser.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, FromArgMatches, ValueHint};
use wasi_http_config::{RouteSpec, Setting, SettingValue};

use crate::args::ServeArgs;
use crate::{Cli, Command};

/// Settings a component may set for itself; every other one is the server's.
pub(crate) const PER_COMPONENT: &[&str] = &[
    "instance-reuse",
    "instance-idle-timeout",
    "instance-concurrency",
    "request-timeout",
    "max-memory",
    "fuel",
    "max-resources",
    "env",
    "env-inherit",
    "guest-output",
    "guest-output-limit",
    "allow-outbound",
    "allow-network",
    "block-network",
    "outbound-h2c",
    "dns-timeout",
    "dns-server",
    "connect-timeout",
    "tls-handshake-timeout",
    "first-byte-timeout",
    "between-bytes-timeout",
    "max-guest-timeout",
    "pool-idle-timeout",
    "outbound-ca",
    "outbound-trust",
    "outbound-client-cert",
    "outbound-client-key",
    "danger-outbound-accept-invalid-certs",
    "max-connections-per-host",
    "max-outbound-requests",
];

/// The command line, and the app a settings file describes, if it does.
pub(crate) struct Parsed {
    pub(crate) cli: Cli,
    pub(crate) app: Option<AppPlan>,
}

/// An app: its components (each with its own flags) and routes.
pub(crate) struct AppPlan {
    /// The settings file (read again on reload).
    pub(crate) file: PathBuf,
    pub(crate) components: Vec<PlannedComponent>,
    pub(crate) routes: Vec<RouteSpec>,
}

/// One component of an app.
pub(crate) struct PlannedComponent {
    pub(crate) name: String,
    /// Its flags: the server's, with its own settings in their place (the
    /// component path is its `source`).
    pub(crate) args: ServeArgs,
    /// The components it may call as `http://NAME.internal/`.
    pub(crate) call: Vec<String>,
}

/// Parses the command line; with `serve --config FILE`, the file's settings come
/// first and the command line's flags override them. A usage error (or `--help`)
/// is clap's: it prints and exits.
pub(crate) fn parse_cli(argv: Vec<OsString>) -> Result<Parsed> {
    parse(argv, Clap::Exit)
}

/// Like [`parse_cli`], for a reload: every error is returned, none exits.
pub(crate) fn parse_cli_checked(argv: Vec<OsString>) -> Result<Parsed> {
    parse(argv, Clap::Return)
}

/// What a usage error does.
#[derive(Clone, Copy)]
enum Clap {
    /// Print it (with usage) and exit, at startup.
    Exit,
    /// Return it, on reload.
    Return,
}

impl Clap {
    fn matches(self, argv: Vec<OsString>) -> Result<clap::ArgMatches> {
        match Cli::command().try_get_matches_from(argv) {
            Ok(m) => Ok(m),
            Err(e) => match self {
                Clap::Exit => e.exit(),
                Clap::Return => Err(anyhow::anyhow!("{}", e.to_string().trim())),
            },
        }
    }
}

fn parse(argv: Vec<OsString>, clap_errors: Clap) -> Result<Parsed> {
    let matches = clap_errors.matches(argv.clone())?;
    let Some(("serve", serve)) = matches.subcommand() else {
        return Ok(Parsed {
            cli: Cli::from_arg_matches(&matches)?,
            app: None,
        });
    };
    let Some(path) = serve.get_one::<PathBuf>("config").cloned() else {
        return Ok(Parsed {
            cli: Cli::from_arg_matches(&matches)?,
            app: None,
        });
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let file = wasi_http_config::parse_app(&text)
        .with_context(|| format!("parsing {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let command = Cli::command();
    let serve_command = command
        .find_subcommand("serve")
        .context("internal: no serve command")?;
    let on_command_line =
        |id: &str| serve.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
    // The file's flags go right after `serve`, so the command line's own come later.
    let at = argv
        .iter()
        .position(|a| a == "serve")
        .map_or(argv.len(), |i| i + 1);
    let flags = |settings: &[Setting], skip: &dyn Fn(&str) -> bool| -> Result<Vec<OsString>> {
        let mut out = Vec::new();
        for setting in settings {
            let arg = find_arg(serve_command, &setting.key).with_context(|| {
                format!("{}: unknown setting `{}`", path.display(), setting.key)
            })?;
            if skip(&setting.key) || on_command_line(arg.get_id().as_str()) {
                continue;
            }
            out.extend(setting_flags(setting, arg, base, &path)?);
        }
        Ok(out)
    };
    if file.components.is_empty() {
        let mut merged: Vec<OsString> = argv[..at].to_vec();
        let component_setting = file.settings.iter().find(|s| s.key == "component");
        merged.extend(flags(&file.settings, &|key| key == "component")?);
        merged.extend_from_slice(&argv[at..]);
        if let Some(Setting {
            value: SettingValue::Values(values),
            ..
        }) = component_setting
        {
            if !on_command_line("component") {
                merged.extend(values.last().map(|v| base.join(v).into_os_string()));
            }
        }
        let matches = clap_errors.matches(merged)?;
        return Ok(Parsed {
            cli: Cli::from_arg_matches(&matches)?,
            app: None,
        });
    }

    // An app: nothing to serve positionally.
    if serve.get_one::<PathBuf>("component").is_some()
        || file.settings.iter().any(|s| s.key == "component")
    {
        bail!(
            "{} describes components: it serves those, so give no COMPONENT (on the command \
             line or as `component =`)",
            path.display()
        );
    }
    let server_flags = flags(&file.settings, &|_| false)?;
    let mut server_argv: Vec<OsString> = argv[..at].to_vec();
    server_argv.extend(server_flags);
    server_argv.extend_from_slice(&argv[at..]);
    let cli = Cli::from_arg_matches(&clap_errors.matches(server_argv)?)?;
    let mut components = Vec::new();
    for spec in &file.components {
        if let Some(s) = spec
            .settings
            .iter()
            .find(|s| !PER_COMPONENT.contains(&s.key.as_str()))
        {
            bail!(
                "{}: [components.{}]: `{}` is the server's setting, not a component's: set it \
                 at the top of the file (a component sets {})",
                path.display(),
                spec.name,
                s.key,
                PER_COMPONENT.join(", ")
            );
        }
        let own = |key: &str| spec.settings.iter().any(|s| s.key == key);
        let mut component_argv: Vec<OsString> = argv[..at].to_vec();
        component_argv.extend(flags(&file.settings, &own)?);
        for setting in &spec.settings {
            let arg = find_arg(serve_command, &setting.key).with_context(|| {
                format!(
                    "{}: [components.{}]: unknown setting `{}`",
                    path.display(),
                    spec.name,
                    setting.key
                )
            })?;
            component_argv.extend(setting_flags(setting, arg, base, &path)?);
        }
        component_argv.extend(without_flags(serve_command, &argv[at..], &own));
        component_argv.push(base.join(&spec.source).into_os_string());
        let parsed = Cli::command()
            .try_get_matches_from(component_argv)
            .and_then(|m| Cli::from_arg_matches(&m))
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: [components.{}]: {}",
                    path.display(),
                    spec.name,
                    e.to_string().trim()
                )
            })?;
        let Command::Serve(args) = parsed.command else {
            bail!("internal: a component's flags parsed as another command");
        };
        components.push(PlannedComponent {
            name: spec.name.clone(),
            args,
            call: spec.call.clone(),
        });
    }
    Ok(Parsed {
        cli,
        app: Some(AppPlan {
            file: path.clone(),
            components,
            routes: file.routes,
        }),
    })
}

fn find_arg<'a>(serve: &'a clap::Command, key: &str) -> Option<&'a clap::Arg> {
    serve
        .get_arguments()
        .find(|a| a.get_long() == Some(key) || (key == "component" && a.get_id() == "component"))
        .filter(|a| a.get_id() != "config")
}

/// The flags a setting stands for (paths relative to the file's directory).
fn setting_flags(
    setting: &Setting,
    arg: &clap::Arg,
    base: &Path,
    file: &Path,
) -> Result<Vec<OsString>> {
    let key = &setting.key;
    let values = match &setting.value {
        SettingValue::Switch(on) if arg.get_action().takes_values() => vec![on.to_string()],
        SettingValue::Switch(true) => return Ok(vec![format!("--{key}").into()]),
        SettingValue::Switch(false) => return Ok(Vec::new()),
        SettingValue::Values(values) => values.clone(),
        _ => bail!("{}: `{key}`: unsupported value", file.display()),
    };
    let is_path = arg.get_value_hint() == ValueHint::FilePath;
    let mut out = Vec::new();
    for v in values {
        out.push(format!("--{key}").into());
        out.push(match is_path {
            true => base.join(v).into_os_string(),
            false => OsString::from(v),
        });
    }
    Ok(out)
}

/// `args` (command-line flags) without the flags `drop` names, with their values.
fn without_flags(
    serve: &clap::Command,
    args: &[OsString],
    drop: &dyn Fn(&str) -> bool,
) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut skip_value = false;
    for token in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        let text = token.to_string_lossy();
        if let Some(flag) = text.strip_prefix("--") {
            let (name, inline) = match flag.split_once('=') {
                Some((name, _)) => (name, true),
                None => (flag, false),
            };
            if drop(name) {
                let takes = find_arg(serve, name).is_some_and(|a| a.get_action().takes_values());
                skip_value = takes && !inline;
                continue;
            }
        }
        out.push(token.clone());
    }
    out
}
