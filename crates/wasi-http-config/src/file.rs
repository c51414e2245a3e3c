//! A settings file: a flat TOML table of flag names to values.

/// One key of a settings file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The key: a flag's long name (`max-memory`), or `component`.
    pub key: String,
    /// What the file gives it.
    pub value: SettingValue,
}

/// A setting's value, as the command line would take it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SettingValue {
    /// `true` or `false`: a switch given, or not.
    Switch(bool),
    /// One value or a list, each as the flag's text (numbers in decimal).
    Values(Vec<String>),
}

/// Why a settings file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SettingsError {
    /// Not TOML: the parser's message (with line and column).
    Syntax(String),
    /// A key whose value is a table or date-time, or a list holding one.
    NotPlain {
        /// The key.
        key: String,
    },
    /// A `[components.NAME]` table that is not right.
    Component {
        /// The component's name.
        name: String,
        /// What is wrong, and how to put it right.
        why: String,
    },
    /// A `[[routes]]` entry (counted from 1) that is not right.
    Route {
        /// Its position in the file.
        number: usize,
        /// What is wrong.
        why: String,
    },
}

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettingsError::Syntax(message) => write!(f, "not valid TOML: {message}"),
            SettingsError::NotPlain { key } => write!(
                f,
                "`{key}` must be a string, number, boolean or a list of those (tables are \
                 only `[components.NAME]` and `[[routes]]`)"
            ),
            SettingsError::Component { name, why } => write!(f, "[components.{name}]: {why}"),
            SettingsError::Route { number, why } => write!(f, "route {number} ([[routes]]): {why}"),
        }
    }
}

impl std::error::Error for SettingsError {}

/// The settings of a file's text, in key order (a file without components).
pub fn parse_settings(text: &str) -> Result<Vec<Setting>, SettingsError> {
    let app = parse_app(text)?;
    if let Some(c) = app.components.first() {
        return Err(SettingsError::Component {
            name: c.name.clone(),
            why: "components are served by `wasi-http serve --config`".into(),
        });
    }
    Ok(app.settings)
}

/// A settings file with an app in it: server-wide settings, components and
/// routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppFile {
    /// The server-wide settings (top-level keys).
    pub settings: Vec<Setting>,
    /// The `[components.NAME]` tables, in name order.
    pub components: Vec<ComponentSpec>,
    /// The `[[routes]]`, in file order.
    pub routes: Vec<RouteSpec>,
}

/// One `[components.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ComponentSpec {
    /// Its name: lowercase letters, digits and `-` (it is a host name in
    /// `http://NAME.internal/`).
    pub name: String,
    /// The `.wasm` (relative to the file).
    pub source: String,
    /// The components it may call as `http://NAME.internal/`.
    pub call: Vec<String>,
    /// Its own settings (flags' names, as at the top level): the server-wide
    /// ones apply where it sets none.
    pub settings: Vec<Setting>,
}

/// One `[[routes]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteSpec {
    /// The host, if the route has one.
    pub host: Option<crate::HostPattern>,
    /// The path.
    pub path: crate::PathPattern,
    /// The component that answers, or the chain of components that does
    /// (middleware first, the last one answering).
    pub chain: Vec<String>,
}

/// Parses a settings file: top-level keys are settings, `[components.NAME]`
/// tables components, `[[routes]]` routes (with `path`, optional `host`, and
/// `component` or `chain`). Names are checked against each other: a route or
/// a `call` names a component that exists.
pub fn parse_app(text: &str) -> Result<AppFile, SettingsError> {
    let table: toml::Table =
        toml::from_str(text).map_err(|e| SettingsError::Syntax(e.to_string()))?;
    let mut app = AppFile::default();
    for (key, value) in table {
        match (key.as_str(), value) {
            ("components", toml::Value::Table(components)) => {
                for (name, spec) in components {
                    app.components.push(component(name, spec)?);
                }
            }
            ("routes", toml::Value::Array(routes)) => {
                for (i, route) in routes.into_iter().enumerate() {
                    app.routes.push(parse_route(i + 1, route)?);
                }
            }
            (_, toml::Value::Boolean(b)) => app.settings.push(Setting {
                key,
                value: SettingValue::Switch(b),
            }),
            (_, value) => {
                let values = plain_values(&key, value)?;
                app.settings.push(Setting {
                    key,
                    value: SettingValue::Values(values),
                });
            }
        }
    }
    let known = |name: &str| app.components.iter().any(|c| c.name == name);
    for (i, route) in app.routes.iter().enumerate() {
        if let Some(missing) = route.chain.iter().find(|c| !known(c)) {
            return Err(SettingsError::Route {
                number: i + 1,
                why: format!("no component `{missing}` (define [components.{missing}])"),
            });
        }
    }
    for c in &app.components {
        if let Some(missing) = c.call.iter().find(|n| !known(n)) {
            return Err(SettingsError::Component {
                name: c.name.clone(),
                why: format!("`call` names `{missing}`, which is not a component"),
            });
        }
    }
    if !app.components.is_empty() && app.routes.is_empty() {
        return Err(SettingsError::Route {
            number: 0,
            why: "components but no [[routes]]: add one per component that takes requests \
                  (path = \"/...\" for all of them)"
                .into(),
        });
    }
    Ok(app)
}

fn component(name: String, spec: toml::Value) -> Result<ComponentSpec, SettingsError> {
    let err = |why: String| SettingsError::Component {
        name: name.clone(),
        why,
    };
    let valid_name = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid_name {
        return Err(err(
            "a name is lowercase letters, digits and `-` (it is a host name: NAME.internal)".into(),
        ));
    }
    let toml::Value::Table(table) = spec else {
        return Err(err("must be a table with at least `source`".into()));
    };
    let mut source = None;
    let mut call = Vec::new();
    let mut settings = Vec::new();
    for (key, value) in table {
        match (key.as_str(), value) {
            ("source", toml::Value::String(s)) => source = Some(s),
            ("source", _) => return Err(err("`source` is the path of a .wasm".into())),
            ("call", value) => {
                call = plain_values("call", value).map_err(|e| err(e.to_string()))?
            }
            (_, toml::Value::Boolean(b)) => settings.push(Setting {
                key,
                value: SettingValue::Switch(b),
            }),
            (_, value) => {
                let values = plain_values(&key, value).map_err(|e| err(e.to_string()))?;
                settings.push(Setting {
                    key,
                    value: SettingValue::Values(values),
                });
            }
        }
    }
    let source = source.ok_or_else(|| err("no `source` (the path of its .wasm)".into()))?;
    Ok(ComponentSpec {
        name,
        source,
        call,
        settings,
    })
}

fn parse_route(number: usize, route: toml::Value) -> Result<RouteSpec, SettingsError> {
    let err = |why: String| SettingsError::Route { number, why };
    let toml::Value::Table(table) = route else {
        return Err(err("must be a table (`[[routes]]`)".into()));
    };
    let (mut path, mut host, mut chain) = (None, None, None);
    for (key, value) in table {
        match (key.as_str(), value) {
            ("path", toml::Value::String(p)) => {
                path = Some(crate::PathPattern::parse(&p).map_err(err)?);
            }
            ("host", toml::Value::String(h)) => {
                host = Some(crate::HostPattern::parse(&h).map_err(err)?);
            }
            ("component", toml::Value::String(c)) if chain.is_none() => chain = Some(vec![c]),
            ("chain", toml::Value::Array(items)) if chain.is_none() => {
                let names = items
                    .into_iter()
                    .map(|v| match v {
                        toml::Value::String(s) => Ok(s),
                        _ => Err(err("`chain` is a list of component names".into())),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if names.is_empty() {
                    return Err(err("`chain` names at least one component".into()));
                }
                chain = Some(names);
            }
            ("component" | "chain", _) => {
                return Err(err(
                    "one of `component = \"NAME\"` or `chain = [\"A\", \"B\"]`".into(),
                ))
            }
            (other, _) => {
                return Err(err(format!(
                    "unknown key `{other}` (a route has `path`, `host`, and `component` or `chain`)"
                )))
            }
        }
    }
    Ok(RouteSpec {
        host,
        path: path.ok_or_else(|| err("no `path` (`/a/b`, or `/a/...` for a prefix)".into()))?,
        chain: chain.ok_or_else(|| err("no `component` (or `chain`)".into()))?,
    })
}

/// A value as the flag values it stands for; a list gives one per item.
fn plain_values(key: &str, value: toml::Value) -> Result<Vec<String>, SettingsError> {
    let not_plain = || SettingsError::NotPlain {
        key: key.to_owned(),
    };
    Ok(match value {
        toml::Value::String(s) => vec![s],
        toml::Value::Integer(i) => vec![i.to_string()],
        toml::Value::Float(f) => vec![f.to_string()],
        toml::Value::Boolean(b) => vec![b.to_string()],
        toml::Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if matches!(item, toml::Value::Array(_) | toml::Value::Table(_)) {
                    return Err(not_plain());
                }
                out.extend(plain_values(key, item)?);
            }
            out
        }
        toml::Value::Table(_) | toml::Value::Datetime(_) => return Err(not_plain()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_with_lists_and_switches() {
        let settings = parse_settings(
            "max-memory = \"512MiB\"\nallow-outbound = [\"a.test\", \"b.test:8080\"]\n\
             workers = 2\nno-access-log = true\n",
        )
        .unwrap();
        let values = |v: &[&str]| SettingValue::Values(v.iter().map(|s| s.to_string()).collect());
        let get = |key: &str| {
            settings
                .iter()
                .find(|s| s.key == key)
                .map(|s| s.value.clone())
        };
        assert_eq!(settings.len(), 4);
        assert_eq!(get("max-memory"), Some(values(&["512MiB"])));
        assert_eq!(
            get("allow-outbound"),
            Some(values(&["a.test", "b.test:8080"]))
        );
        assert_eq!(get("workers"), Some(values(&["2"])));
        assert_eq!(get("no-access-log"), Some(SettingValue::Switch(true)));
    }

    #[test]
    fn an_app_with_components_and_routes() {
        let app = parse_app(concat!(
            "workers = 2\n",
            "[components.api]\nsource = \"api.wasm\"\ninstance-reuse = 64\ncall = [\"auth\"]\n",
            "[components.auth]\nsource = \"auth.wasm\"\n",
            "[[routes]]\npath = \"/api/...\"\nchain = [\"auth\", \"api\"]\n",
            "[[routes]]\npath = \"/login\"\nhost = \"*.example.com\"\ncomponent = \"auth\"\n",
        ))
        .unwrap();
        assert_eq!(app.settings.len(), 1);
        assert_eq!(app.components.len(), 2);
        assert_eq!(app.components[0].name, "api");
        assert_eq!(app.components[0].call, ["auth"]);
        assert_eq!(app.components[0].settings.len(), 1);
        assert_eq!(app.routes[0].chain, ["auth", "api"]);
        assert_eq!(
            app.routes[1].host,
            Some(crate::HostPattern::Suffix(".example.com".into()))
        );
        let route = "[[routes]]\npath = \"/\"\n";
        let a = "[components.a]\nsource = \"a.wasm\"\n";
        for (text, says) in [
            (
                "[components.Api]\nsource = \"a.wasm\"".to_owned(),
                "lowercase",
            ),
            ("[components.a]\nx = 1".to_owned(), "no `source`"),
            (a.to_owned(), "no [[routes]]"),
            (format!("{a}{route}component = \"b\""), "no component `b`"),
            (
                format!("{a}call = [\"z\"]\n{route}component = \"a\""),
                "`call` names `z`",
            ),
            (
                "[[routes]]\npath = \"x\"\ncomponent = \"a\"".to_owned(),
                "must start with `/`",
            ),
            (route.to_owned(), "no `component`"),
            ("[[routes]]\ncomponent = \"a\"".to_owned(), "no `path`"),
            (
                format!("{route}component = \"a\"\nchain = [\"a\"]"),
                "one of",
            ),
            (
                format!("{route}component = \"a\"\nweight = 1"),
                "unknown key `weight`",
            ),
        ] {
            let e = parse_app(&text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn tables_dates_and_nested_lists_are_refused() {
        for text in [
            "a = { b = 1 }",
            "a = 1979-05-27",
            "a = [[1]]",
            "a = [{ b = 1 }]",
        ] {
            assert_eq!(
                parse_settings(text),
                Err(SettingsError::NotPlain { key: "a".into() }),
                "{text}"
            );
        }
        assert!(matches!(
            parse_settings("a = "),
            Err(SettingsError::Syntax(_))
        ));
    }
}
