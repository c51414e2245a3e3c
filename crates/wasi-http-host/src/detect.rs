//! Which WASI version a component is for, told from its exports before it is
//! compiled (a 0.3 component needs an engine with the component model's async ABI
//! even to parse), and [`AnyService`], a service of either version.

use bytes::Bytes;
use http_body::Body;
use wasi_http_core::{ErrorCode, Handler, HostBody, RequestContext};
use wasmparser::{Parser, Payload};

use crate::EngineConfig;

/// What a component is, by what it exports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ComponentKind {
    /// A `wasi:http/service` component: exports `wasi:http/handler@0.3.x`.
    HttpP3 {
        /// The export's full name.
        export: String,
    },
    /// A `wasi:http/proxy` component: exports `wasi:http/incoming-handler@0.2.x`.
    HttpP2 {
        /// The export's full name.
        export: String,
    },
    /// A `wasi:cli/command` component: exports `wasi:cli/run`, 0.3 or 0.2.
    Command {
        /// The export's full name.
        export: String,
        /// Whether it is `wasi:cli/run@0.3.x`.
        p3: bool,
    },
}

impl ComponentKind {
    /// Whether the component is a WASI 0.3 one.
    pub fn is_p3(&self) -> bool {
        matches!(
            self,
            ComponentKind::HttpP3 { .. } | ComponentKind::Command { p3: true, .. }
        )
    }

    /// Sets what an engine must support to run such a component.
    pub fn configure(&self, config: &mut EngineConfig) {
        config.component_model_async = self.is_p3();
    }

    /// A short description for startup lines, e.g. `WASI 0.3 HTTP service
    /// (wasi:http/handler@0.3.0)`.
    pub fn describe(&self) -> String {
        match self {
            ComponentKind::HttpP3 { export } => format!("WASI 0.3 HTTP service ({export})"),
            ComponentKind::HttpP2 { export } => format!("WASI 0.2 HTTP proxy ({export})"),
            ComponentKind::Command { export, p3 } => {
                let version = if *p3 { "0.3" } else { "0.2" };
                format!("WASI {version} command ({export})")
            }
        }
    }
}

/// Why a component's kind could not be told.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DetectError {
    /// A core WebAssembly module, not a component.
    CoreModule,
    /// Not WebAssembly, or malformed.
    Invalid(String),
    /// A component that exports none of the supported interfaces; its exports.
    Unsupported(Vec<String>),
}

impl std::fmt::Display for DetectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DetectError::CoreModule => f.write_str(
                "this is a core WebAssembly module, not a component; \
                 make it a component with `wasm-tools component new`",
            ),
            DetectError::Invalid(why) => write!(f, "not a valid WebAssembly component: {why}"),
            DetectError::Unsupported(exports) => {
                let listed = if exports.is_empty() {
                    "nothing".to_owned()
                } else {
                    exports.join(", ")
                };
                write!(
                    f,
                    "the component exports {listed}; supported are wasi:http/handler@0.3.x \
                     (a WASI 0.3 HTTP service), wasi:http/incoming-handler@0.2.x (a WASI 0.2 \
                     HTTP proxy) and, for `run`, wasi:cli/run@0.2.x or @0.3.x"
                )
            }
        }
    }
}

impl std::error::Error for DetectError {}

/// Reads a component's top-level exports (without compiling it) and says what it
/// is. A component exporting several supported interfaces is the first of: 0.3
/// handler, 0.2 incoming-handler, `wasi:cli/run`.
pub fn detect(bytes: &[u8]) -> Result<ComponentKind, DetectError> {
    if bytes.len() >= 8 && bytes[0..4] == *b"\0asm" && bytes[6..8] == [0, 0] {
        return Err(DetectError::CoreModule);
    }
    let mut exports = Vec::new();
    // Nested modules and components have their own sections; only the outermost
    // component's exports count.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| DetectError::Invalid(e.to_string()))?;
        match payload {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|e| DetectError::Invalid(e.to_string()))?;
                    exports.push(export.name.name.to_owned());
                }
            }
            Payload::Version {
                encoding: wasmparser::Encoding::Module,
                ..
            } if depth == 0 => return Err(DetectError::CoreModule),
            _ => {}
        }
    }
    let find = |prefix: &str| exports.iter().find(|e| e.starts_with(prefix)).cloned();
    if let Some(export) = find("wasi:http/handler@0.3") {
        return Ok(ComponentKind::HttpP3 { export });
    }
    if let Some(export) = find("wasi:http/incoming-handler@0.2") {
        return Ok(ComponentKind::HttpP2 { export });
    }
    if let Some(export) = find("wasi:cli/run@0.3") {
        return Ok(ComponentKind::Command { export, p3: true });
    }
    if let Some(export) = find("wasi:cli/run@0.2") {
        return Ok(ComponentKind::Command { export, p3: false });
    }
    Err(DetectError::Unsupported(exports))
}

/// A service of either version, for servers that take whatever component they
/// are given.
#[derive(Clone)]
#[non_exhaustive]
pub enum AnyService {
    /// A 0.2 `wasi:http/proxy` service.
    #[cfg(feature = "p2")]
    P2(crate::p2::ProxyService),
    /// A 0.3 `wasi:http/service` service.
    #[cfg(feature = "p3")]
    P3(crate::p3::Service),
}

impl AnyService {
    /// See [`crate::p2::ProxyService::check_instantiation`].
    pub async fn check_instantiation(&self) -> Result<(), crate::ServiceError> {
        match self {
            #[cfg(feature = "p2")]
            AnyService::P2(service) => service.check_instantiation().await,
            #[cfg(feature = "p3")]
            AnyService::P3(service) => service.check_instantiation().await,
        }
    }
}

impl Handler for AnyService {
    async fn handle<B>(
        &self,
        request: http::Request<B>,
        cx: RequestContext,
    ) -> http::Response<HostBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<ErrorCode>,
    {
        match self {
            #[cfg(feature = "p2")]
            AnyService::P2(service) => service.handle(request, cx).await,
            #[cfg(feature = "p3")]
            AnyService::P3(service) => service.handle(request, cx).await,
        }
    }
}
