//! `serve --config FILE`: the file's settings become flags, and the command
//! line's flags override them, so both share one parser and one set of defaults.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, FromArgMatches, ValueHint};
use wasi_http_config::{Setting, SettingValue};

use crate::Cli;

/// Parses the command line; with `serve --config FILE`, the file's settings come
/// first and the command line's flags override them.
pub(crate) fn parse_cli(argv: Vec<OsString>) -> Result<Cli> {
    let matches = Cli::command().get_matches_from(argv.clone());
    let Some(("serve", serve)) = matches.subcommand() else {
        return Ok(Cli::from_arg_matches(&matches)?);
    };
    let Some(path) = serve.get_one::<PathBuf>("config") else {
        return Ok(Cli::from_arg_matches(&matches)?);
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let settings = wasi_http_config::parse_settings(&text)
        .with_context(|| format!("parsing {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let command = Cli::command();
    let serve_command = command
        .find_subcommand("serve")
        .context("internal: no serve command")?;
    let mut from_file: Vec<OsString> = Vec::new();
    let mut component = None;
    for Setting { key, value } in settings {
        let arg = serve_command
            .get_arguments()
            .find(|a| {
                a.get_long() == Some(key.as_str())
                    || (key == "component" && a.get_id() == "component")
            })
            .filter(|a| a.get_id() != "config")
            .with_context(|| format!("{}: unknown setting `{key}`", path.display()))?;
        if serve.value_source(arg.get_id().as_str()) == Some(clap::parser::ValueSource::CommandLine)
        {
            continue; // the command line wins
        }
        let values = match value {
            SettingValue::Switch(on) if arg.get_action().takes_values() => vec![on.to_string()],
            SettingValue::Switch(on) => {
                if on {
                    from_file.push(format!("--{key}").into());
                }
                continue;
            }
            SettingValue::Values(values) => values,
            _ => bail!("{}: `{key}`: unsupported value", path.display()),
        };
        let is_path = arg.get_value_hint() == ValueHint::FilePath;
        let mut values = values.into_iter().map(|v| match is_path {
            true => base.join(v).into_os_string(),
            false => OsString::from(v),
        });
        if key == "component" {
            component = values.next_back();
            continue;
        }
        for v in values {
            from_file.push(format!("--{key}").into());
            from_file.push(v);
        }
    }
    // The file's flags go right after `serve`, so the command line's own come later.
    let at = argv
        .iter()
        .position(|a| a == "serve")
        .map_or(argv.len(), |i| i + 1);
    let mut merged: Vec<OsString> = argv[..at].to_vec();
    merged.extend(from_file);
    merged.extend_from_slice(&argv[at..]);
    merged.extend(component);
    let matches = Cli::command().get_matches_from(merged);
    Ok(Cli::from_arg_matches(&matches)?)
}
