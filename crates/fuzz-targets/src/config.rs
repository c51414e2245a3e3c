//! The settings file: arbitrary text as a TOML settings file, and every value it
//! gives through the parser of each kind of setting (durations, sizes, memory,
//! DNS servers, destination rules and networks). Holds: nothing panics; what
//! parses is in range (a duration or size never wrapped around).

use wasi_http_config::{parse_dns_server, parse_duration, parse_memory, parse_size, SettingValue};

/// The target.
pub fn run(data: &[u8]) {
    let text = crate::text(data);
    if let Ok(app) = wasi_http_config::parse_app(&text) {
        routes(&app, &text);
    }
    let Ok(settings) = wasi_http_config::parse_settings(&text) else {
        return;
    };
    for setting in settings {
        let SettingValue::Values(values) = setting.value else {
            continue;
        };
        for value in values {
            value_parsers(&value);
        }
    }
    // Values alone, too: most inputs are not valid TOML.
    value_parsers(&text);
}

/// The app's routes: a router that either refuses a conflict or sends every
/// request to a route that matches it.
fn routes(app: &wasi_http_config::AppFile, text: &str) {
    let routes: Vec<wasi_http_config::Route> = app
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| wasi_http_config::Route {
            host: r.host.clone(),
            path: r.path.clone(),
            target: i,
        })
        .collect();
    let Ok(router) = wasi_http_config::Router::new(routes) else {
        return;
    };
    // Paths and hosts from the text itself, as requests.
    for word in text.split(|c: char| c == '"' || c.is_whitespace()) {
        for (host, path) in [
            (None, word),
            (Some(word), "/"),
            (Some("a.example.com"), word),
        ] {
            if let Some(m) = router.route(host, path) {
                assert!(m.route < app.routes.len());
                assert!(path.ends_with(m.path_info), "{path} / {}", m.path_info);
            }
        }
    }
}

fn value_parsers(value: &str) {
    if let Ok(d) = parse_duration(value) {
        // Whole minutes at most: a wrapped multiplication would come out smaller.
        let digits: String = value
            .trim()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(n) = digits.parse::<u64>() {
            assert!(d.as_secs() >= n / 1000, "{value}: {d:?}");
        }
    }
    if let Ok(n) = parse_size(value) {
        let digits: String = value
            .trim()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        assert!(n >= digits.parse::<u64>().unwrap_or(0), "{value}: {n}");
    }
    if let Ok(n) = parse_memory(value) {
        assert!(n <= 4 << 30);
    }
    let _ = parse_dns_server(value);
    let _ = value.parse::<wasi_http_client::DestinationRule>();
}
