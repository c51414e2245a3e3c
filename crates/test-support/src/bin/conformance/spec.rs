//! The spec format: parsing and validating a case's JSON.

use super::*;

#[derive(Deserialize)]
pub(crate) struct Spec {
    pub(crate) world: Option<String>,
    #[serde(default)]
    pub(crate) servers: Vec<ServerSpec>,
    pub(crate) operations: Vec<Operation>,
}

#[derive(Deserialize)]
pub(crate) struct ServerSpec {
    pub(crate) name: String,
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) endpoints: Vec<EndpointSpec>,
}

#[derive(Deserialize, Clone)]
pub(crate) struct EndpointSpec {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) mode: Option<String>,
    pub(crate) response: Option<OriginResponse>,
}

/// What a default-mode endpoint answers.
#[derive(Clone)]
pub(crate) struct OriginResponse {
    pub(crate) status: u16,
    pub(crate) headers: Headers,
    pub(crate) body: Option<String>,
    pub(crate) chunks: Option<Vec<String>>,
    pub(crate) trailers: Headers,
}

impl<'de> Deserialize<'de> for OriginResponse {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Object {
            #[serde(default = "default_status")]
            status: u16,
            #[serde(default)]
            headers: Headers,
            body: Option<String>,
            chunks: Option<Vec<String>>,
            #[serde(default)]
            trailers: Headers,
        }
        fn default_status() -> u16 {
            200
        }
        match Value::deserialize(deserializer)? {
            Value::String(body) => Ok(OriginResponse {
                status: 200,
                headers: Headers::default(),
                body: Some(body),
                chunks: None,
                trailers: Headers::default(),
            }),
            value @ Value::Object(_) => {
                let object: Object = serde_json::from_value(value)
                    .map_err(|e| D::Error::custom(format!("endpoint response: {e}")))?;
                Ok(OriginResponse {
                    status: object.status,
                    headers: object.headers,
                    body: object.body,
                    chunks: object.chunks,
                    trailers: object.trailers,
                })
            }
            other => Err(D::Error::custom(format!(
                "endpoint response must be a string or an object, not {}",
                json_kind(&other)
            ))),
        }
    }
}

/// Header fields, from an object (`{"name": "value"}`, a value may be a list of strings)
/// or a list (`[["name", "value"], ...]` or `[{"name": ..., "value": ...}, ...]`).
#[derive(Clone, Default, Debug)]
pub(crate) struct Headers(pub(crate) Vec<(String, String)>);

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        headers_from_json(&value)
            .map(Headers)
            .map_err(D::Error::custom)
    }
}

pub(crate) fn headers_from_json(value: &Value) -> Result<Vec<(String, String)>, String> {
    let mut fields = Vec::new();
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (name, value) in map {
                match value {
                    Value::String(text) => fields.push((name.clone(), text.clone())),
                    Value::Array(items) => {
                        for item in items {
                            let Value::String(text) = item else {
                                return Err(format!(
                                    "header `{name}`: values must be strings, not {}",
                                    json_kind(item)
                                ));
                            };
                            fields.push((name.clone(), text.clone()));
                        }
                    }
                    other => {
                        return Err(format!(
                            "header `{name}`: value must be a string or a list of strings, not {}",
                            json_kind(other)
                        ))
                    }
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                let pair = match item {
                    Value::Array(pair) => match pair.as_slice() {
                        [Value::String(name), Value::String(text)] => Some((name, text)),
                        _ => None,
                    },
                    Value::Object(map) => match (map.get("name"), map.get("value")) {
                        (Some(Value::String(name)), Some(Value::String(text))) => {
                            Some((name, text))
                        }
                        _ => None,
                    },
                    _ => None,
                };
                let (name, text) = pair.ok_or_else(|| {
                    format!(
                        "header list entries must be [name, value] or {{\"name\", \"value\"}} \
                         with strings, not {item}"
                    )
                })?;
                fields.push((name.clone(), text.clone()));
            }
        }
        other => {
            return Err(format!(
                "headers must be an object or a list, not {}",
                json_kind(other)
            ))
        }
    }
    Ok(fields)
}

pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum Operation {
    Run,
    Request(RequestOp),
    Kill { signal: String },
    Wait,
}

impl Operation {
    pub(crate) fn describe(&self) -> String {
        match self {
            Operation::Run => "run".into(),
            Operation::Request(r) => format!("request {} {}", r.method, r.path),
            Operation::Kill { signal } => format!("kill {signal}"),
            Operation::Wait => "wait".into(),
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct RequestOp {
    pub(crate) method: String,
    pub(crate) path: String,
    #[serde(default)]
    pub(crate) headers: Headers,
    pub(crate) body: Option<String>,
    pub(crate) response: ExpectedResponse,
}

#[derive(Deserialize)]
pub(crate) struct ExpectedResponse {
    pub(crate) status: u16,
    pub(crate) headers: Option<Headers>,
    pub(crate) body: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum World {
    Service,
    Command,
}

/// Checks what serde cannot; returns the world to run.
pub(crate) fn validate(spec: &Spec) -> Result<World, String> {
    let world = match spec.world.as_deref() {
        None => World::Command,
        Some(world) => match world.split('@').next().unwrap_or(world) {
            "wasi:http/service" => World::Service,
            "wasi:cli/command" => World::Command,
            _ => {
                return Err(format!(
                    "unsupported world `{world}` (expected wasi:http/service or wasi:cli/command)"
                ))
            }
        },
    };
    let mut names = HashSet::new();
    for (i, server) in spec.servers.iter().enumerate() {
        validate_server(server).map_err(|e| format!("servers[{i}] (`{}`): {e}", server.name))?;
        if !names.insert(server.name.to_uppercase()) {
            return Err(format!(
                "servers[{i}]: a second server named `{}`",
                server.name
            ));
        }
    }
    if spec.operations.is_empty() {
        return Err("no operations".into());
    }
    for (i, op) in spec.operations.iter().enumerate() {
        validate_operation(op, world)
            .map_err(|e| format!("operations[{i}] ({}): {e}", op.describe()))?;
    }
    Ok(world)
}

pub(crate) fn validate_server(server: &ServerSpec) -> Result<(), String> {
    if server.name.is_empty()
        || !server
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err("the name must be non-empty letters, digits, `_` or `-`".into());
    }
    match server.kind.as_deref() {
        None => {}
        Some("closed") => return Ok(()),
        Some(other) => return Err(format!("unknown kind `{other}` (expected \"closed\")")),
    }
    let mut seen = HashSet::new();
    for (i, endpoint) in server.endpoints.iter().enumerate() {
        let what = format!("endpoints[{i}] ({} {})", endpoint.method, endpoint.path);
        validate_endpoint(endpoint).map_err(|e| format!("{what}: {e}"))?;
        if !seen.insert((endpoint.method.clone(), endpoint.path.clone())) {
            return Err(format!(
                "{what}: a second endpoint for the same method and path"
            ));
        }
    }
    Ok(())
}

pub(crate) fn validate_endpoint(endpoint: &EndpointSpec) -> Result<(), String> {
    http::Method::from_bytes(endpoint.method.as_bytes())
        .map_err(|_| format!("invalid method `{}`", endpoint.method))?;
    if endpoint.path.is_empty()
        || endpoint
            .path
            .chars()
            .any(|c| c.is_ascii_whitespace() || c.is_control())
    {
        return Err(format!("invalid path {:?}", endpoint.path));
    }
    match (endpoint.mode.as_deref(), &endpoint.response) {
        (None, None) => Err("a default-mode endpoint needs a `response`".into()),
        (None, Some(response)) => validate_origin_response(response),
        (Some(mode @ ("echo-body" | "echo-headers")), Some(_)) => {
            Err(format!("mode `{mode}` takes no `response`"))
        }
        (Some("echo-body" | "echo-headers"), None) => Ok(()),
        (Some(other), _) => Err(format!(
            "unknown mode `{other}` (expected echo-body or echo-headers)"
        )),
    }
}

pub(crate) fn validate_origin_response(response: &OriginResponse) -> Result<(), String> {
    if !(200..=999).contains(&response.status) {
        return Err(format!(
            "response status {} is not a final status (200..=999)",
            response.status
        ));
    }
    if response.body.is_some() && response.chunks.is_some() {
        return Err("a response has either `body` or `chunks`, not both".into());
    }
    validate_fields(&response.headers).map_err(|e| format!("response headers: {e}"))?;
    validate_fields(&response.trailers).map_err(|e| format!("response trailers: {e}"))
}

pub(crate) fn validate_fields(fields: &Headers) -> Result<(), String> {
    for (name, value) in &fields.0 {
        http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid field name {name:?}"))?;
        http::HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value {value:?} of field `{name}`"))?;
    }
    Ok(())
}

pub(crate) fn validate_operation(op: &Operation, world: World) -> Result<(), String> {
    match op {
        Operation::Run | Operation::Wait => Ok(()),
        Operation::Kill { signal } => signal_name(signal).map(drop),
        Operation::Request(request) => {
            if world != World::Service {
                return Err("requests need the world wasi:http/service".into());
            }
            http::Method::from_bytes(request.method.as_bytes())
                .map_err(|_| format!("invalid method `{}`", request.method))?;
            let uri = http::Uri::try_from(request.path.as_str())
                .map_err(|e| format!("invalid path {:?}: {e}", request.path))?;
            if uri.scheme().is_some() || !(request.path.starts_with('/') || request.path == "*") {
                return Err(format!(
                    "the path {:?} must be origin-form (`/...`) or `*`",
                    request.path
                ));
            }
            validate_fields(&request.headers).map_err(|e| format!("request headers: {e}"))?;
            if !(100..=999).contains(&request.response.status) {
                return Err(format!(
                    "expected status {} is not a status code",
                    request.response.status
                ));
            }
            if let Some(headers) = &request.response.headers {
                for (name, _) in &headers.0 {
                    http::HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| format!("invalid expected header name {name:?}"))?;
                }
            }
            Ok(())
        }
    }
}

/// `SIGINT`, `INT`, `sigint` -> `INT`.
pub(crate) fn signal_name(signal: &str) -> Result<&'static str, String> {
    let upper = signal.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS
        .iter()
        .find(|known| **known == bare)
        .copied()
        .ok_or_else(|| {
            format!(
                "unsupported signal `{signal}` (one of {})",
                SIGNALS
                    .iter()
                    .map(|s| format!("SIG{s}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}
