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
}

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettingsError::Syntax(message) => write!(f, "not valid TOML: {message}"),
            SettingsError::NotPlain { key } => write!(
                f,
                "`{key}` must be a string, number, boolean or a list of those"
            ),
        }
    }
}

impl std::error::Error for SettingsError {}

/// The settings of a file's text, in key order.
pub fn parse_settings(text: &str) -> Result<Vec<Setting>, SettingsError> {
    let table: toml::Table =
        toml::from_str(text).map_err(|e| SettingsError::Syntax(e.to_string()))?;
    table
        .into_iter()
        .map(|(key, value)| {
            let value = match value {
                toml::Value::Boolean(b) => SettingValue::Switch(b),
                other => SettingValue::Values(plain_values(&key, other)?),
            };
            Ok(Setting { key, value })
        })
        .collect()
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
