//! What answers requests: one component (the command line's), or an app (the
//! settings file's components and routes). Built at start, and again on every
//! reload.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body::Body;
use wasi_http_client as client;
use wasi_http_config::{Route, Router};
use wasi_http_core::{ComponentName, ErrorCode, Handler, HostBody, RequestContext};
use wasi_http_host::{AnyService, ComponentKind, EngineConfig, ServiceConfig};

use crate::args::{Output, ServeArgs};
use crate::config_file::AppPlan;
use crate::DEMO_COMPONENT;

/// The request headers that tell a guest of an app which route took its
/// request; a client's own copies are removed.
pub(crate) const ROUTE_HEADER: &str = "x-wasi-http-route";
/// ... and what the path has beyond the route's base (`""` or `/rest`).
pub(crate) const PATH_INFO_HEADER: &str = "x-wasi-http-path-info";

/// What serves requests, and the outbound clients it made (for metrics).
pub(crate) struct Served {
    pub(crate) dispatch: Dispatch,
    pub(crate) clients: Vec<client::Client>,
}

/// One component, or an app.
pub(crate) enum Dispatch {
    One(AnyService),
    App(App),
}

/// Components and the routes to them.
pub(crate) struct App {
    router: Router,
    /// Per route: the component that takes its requests (a chain's first), its
    /// service, and the route as written.
    routes: Vec<(Arc<str>, AnyService, http::HeaderValue)>,
    /// The components by name (the targets of internal calls, which their
    /// hooks reach weakly through this).
    _components: Arc<crate::calls::Components>,
    metrics: wasi_http_server::Metrics,
}

/// The command line's component (or the embedded demo), as `serve` always
/// served it.
pub(crate) async fn build_one(args: &ServeArgs) -> Result<Served> {
    let (bytes, name) = match &args.component {
        Some(path) => (
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (
            DEMO_COMPONENT.to_vec(),
            "the embedded demo component".to_owned(),
        ),
    };
    let kind = http_kind(&bytes, &name, args)?;
    let (engine, component) = crate::component::load(
        &bytes,
        args.component.as_deref(),
        &name,
        &kind,
        engine_config(args),
        &args.cache,
        args.component.is_some(),
    )?;
    let client = client::Client::new(args.outbound.client_config()?);
    let service = service(args, &kind, &engine, &component, &client, None)?;
    check(&service, &name).await?;
    Ok(Served {
        dispatch: Dispatch::One(service),
        clients: vec![client],
    })
}

/// The app of a settings file: an engine per WASI version its components use
/// (sized for the largest), each component compiled with its own service and
/// outbound client, and the router.
pub(crate) async fn build_app(
    plan: &AppPlan,
    server: &ServeArgs,
    metrics: &wasi_http_server::Metrics,
    admission: &crate::calls::AdmissionCell,
) -> Result<Served> {
    struct Loaded {
        bytes: Vec<u8>,
        kind: ComponentKind,
    }
    let mut loaded = Vec::new();
    for c in &plan.components {
        let path = c
            .args
            .component
            .as_ref()
            .context("internal: a component without its source")?;
        let bytes = std::fs::read(path)
            .with_context(|| format!("[components.{}]: reading {}", c.name, path.display()))?;
        let kind = http_kind(
            &bytes,
            &format!("[components.{}] {}", c.name, path.display()),
            &c.args,
        )?;
        loaded.push(Loaded { bytes, kind });
    }
    // One engine per version: slots and memory shared by the app, sized for its
    // largest component; fuel compiled in if any component is metered.
    let mut engine_config = engine_config(server);
    engine_config.max_memory_bytes = plan
        .components
        .iter()
        .map(|c| c.args.max_memory)
        .max()
        .unwrap_or(engine_config.max_memory_bytes);
    engine_config.fuel = plan.components.iter().any(|c| c.args.fuel.is_some());
    let mut engines: Vec<(bool, wasmtime::Engine)> = Vec::new();
    let shared = crate::calls::Shared::new(admission.clone(), metrics.clone());
    let mut compiled = Vec::new();
    let mut components = Vec::new();
    let mut clients = Vec::new();
    for (plan_c, l) in plan.components.iter().zip(&loaded) {
        let p3 = l.kind.is_p3();
        let engine = match engines.iter().find(|(v, _)| *v == p3) {
            Some((_, engine)) => engine.clone(),
            None => {
                let engine = crate::component::engine(&l.kind, engine_config.clone())?;
                engines.push((p3, engine.clone()));
                engine
            }
        };
        let name = format!("[components.{}]", plan_c.name);
        let component = crate::component::compile(
            &engine,
            &l.bytes,
            plan_c.args.component.as_deref(),
            &name,
            &l.kind,
            engine_config.fuel,
            &server.cache,
            true,
        )?;
        let links = links(plan_c, &shared, None);
        let client = client::Client::new(plan_c.args.outbound.client_config()?);
        let service = service(
            &plan_c.args,
            &l.kind,
            &engine,
            &component,
            &client,
            Some(links),
        )?;
        check(&service, &name).await?;
        components.push((Arc::<str>::from(plan_c.name.as_str()), service));
        clients.push(client);
        compiled.push((engine, component));
    }
    let components = Arc::new(components);
    shared.set_components(&components);
    let index = |name: &str| plan.components.iter().position(|c| c.name == name);
    let mut routes = Vec::new();
    let mut table = Vec::new();
    for (i, r) in plan.routes.iter().enumerate() {
        let written = http::HeaderValue::from_str(&r.path.written())
            .with_context(|| format!("route {}: the path is not a header value", i + 1))?;
        let mut positions = Vec::with_capacity(r.chain.len());
        for n in &r.chain {
            positions.push(index(n).context("internal: a route to an unknown component")?);
        }
        let (&last, middleware) = positions
            .split_last()
            .context("internal: a route to no component")?;
        // A chain is served from its end: each middleware gets a service of
        // its own whose next handler is the service after it.
        let (mut name, mut target) = components[last].clone();
        for &m in middleware.iter().rev() {
            let what = format!(
                "route {} (`{}`): chain component `{}`",
                i + 1,
                r.path.written(),
                plan.components[m].name
            );
            let (engine, component) = &compiled[m];
            check_middleware(&loaded[m].kind, engine, component, &what)?;
            let plan_c = &plan.components[m];
            let links = links(plan_c, &shared, Some((name, target)));
            // The component's own outbound client (and pool), wherever it runs.
            let service = service(
                &plan_c.args,
                &loaded[m].kind,
                engine,
                component,
                &clients[m],
                Some(links),
            )?;
            check(&service, &what).await?;
            name = components[m].0.clone();
            target = service;
        }
        routes.push(Route {
            host: r.host.clone(),
            path: r.path.clone(),
            target: i,
        });
        table.push((name, target, written));
    }
    let router = Router::new(routes)
        .map_err(anyhow::Error::from)
        .with_context(|| plan.file.display().to_string())?;
    Ok(Served {
        dispatch: Dispatch::App(App {
            router,
            routes: table,
            _components: components,
            metrics: metrics.clone(),
        }),
        clients,
    })
}

/// What a component of an app reaches besides the network.
fn links(
    c: &crate::config_file::PlannedComponent,
    shared: &crate::calls::Shared,
    next: Option<(Arc<str>, AnyService)>,
) -> crate::calls::Links {
    crate::calls::Links {
        name: Arc::from(c.name.as_str()),
        may_call: c.call.iter().map(|n| Arc::from(n.as_str())).collect(),
        shared: shared.clone(),
        next,
    }
}

/// A chain's middleware is a WASI 0.3 component that imports
/// `wasi:http/handler` (the `wasi:http/middleware` world): anything else
/// could never hand a request on.
fn check_middleware(
    kind: &ComponentKind,
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
    what: &str,
) -> Result<()> {
    if !kind.is_p3() {
        bail!(
            "{what} is a WASI 0.2 component: only a WASI 0.3 middleware (one that imports \
             wasi:http/handler) can come before another in a chain; make it the chain's last"
        );
    }
    let imports_handler = component
        .component_type()
        .imports(engine)
        .any(|(name, _)| name.starts_with("wasi:http/handler@0.3"));
    if !imports_handler {
        bail!(
            "{what} does not import wasi:http/handler, so it cannot call the next component: \
             build it for the wasi:http/middleware world, or make it the chain's last"
        );
    }
    Ok(())
}

/// The HTTP service kind of `bytes`; a command component is refused.
fn http_kind(bytes: &[u8], name: &str, args: &ServeArgs) -> Result<ComponentKind> {
    let kind = crate::component::kind_of(bytes, name, args.cache.allow_precompiled)?;
    if let ComponentKind::Command { export, .. } = &kind {
        bail!(
            "{name} is a command component (it exports {export}), not an HTTP service: \
             run it with `wasi-http run`"
        );
    }
    Ok(kind)
}

fn engine_config(args: &ServeArgs) -> EngineConfig {
    let mut engine_config = EngineConfig::default();
    engine_config.pooling = !args.no_pooling;
    engine_config.max_instances = args.max_instances;
    engine_config.max_memory_bytes = args.max_memory;
    engine_config.fuel = args.fuel.is_some();
    engine_config
}

/// The service of a compiled component, sending through `client` (the
/// component's own: a chain position reuses its component's).
fn service(
    args: &ServeArgs,
    kind: &ComponentKind,
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
    client: &client::Client,
    links: Option<crate::calls::Links>,
) -> Result<AnyService> {
    let mut config = ServiceConfig::default();
    config.hooks = match links {
        Some(links) => Arc::new(crate::calls::CallHooks::new(client.clone(), links)),
        None => Arc::new(client.clone()),
    };
    config.env = args.guest_env.vars()?;
    config.max_memory_bytes = Some(args.max_memory);
    config.max_resources = args.max_resources;
    config.request_timeout = (!args.request_timeout.is_zero()).then_some(args.request_timeout);
    config.fuel = args.fuel;
    let reuse_default = if kind.is_p3() { 128 } else { 0 };
    let (requests, concurrency) = match args.instance_reuse.unwrap_or(reuse_default) {
        // A fresh instance per request, for 0.3 too.
        0 if kind.is_p3() => (1, 1),
        n => (n, args.instance_concurrency.max(1)),
    };
    if requests > 0 {
        let mut reuse = wasi_http_host::InstanceReuse::new(requests);
        reuse.idle_timeout = args.instance_idle_timeout;
        reuse.max_concurrent = concurrency;
        config.instance_reuse = Some(reuse);
    }
    config.guest_output = match args.guest_output {
        Output::Log => wasi_http_host::GuestOutput::Log {
            max_bytes: usize::try_from(args.guest_output_limit).unwrap_or(usize::MAX),
        },
        Output::Inherit => wasi_http_host::GuestOutput::Inherit,
        Output::Discard => wasi_http_host::GuestOutput::Discard,
    };
    let service = match kind {
        ComponentKind::HttpP3 { .. } => {
            AnyService::P3(wasi_http_host::p3::Service::new(engine, component, config)?)
        }
        _ => AnyService::P2(wasi_http_host::p2::ProxyService::new(
            engine, component, config,
        )?),
    };
    Ok(service)
}

/// Ready means instantiable: a start function that traps, or memory past the
/// limits, fails here rather than on every request.
async fn check(service: &AnyService, name: &str) -> Result<()> {
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        service.check_instantiation(),
    )
    .await
    .map_err(|_| {
        anyhow::anyhow!(
            "{name}: instantiation took over 60 s (a start function that does not return?)"
        )
    })?
    .with_context(|| name.to_owned())
}

impl App {
    pub(crate) async fn handle<B>(
        &self,
        mut request: http::Request<B>,
        cx: RequestContext,
    ) -> http::Response<HostBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<ErrorCode>,
    {
        let host = request
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| request.headers().get(http::header::HOST)?.to_str().ok());
        let path = request.uri().path();
        // The path is a valid URI path, so its rest is a valid header value.
        let (target, path_info) = match self.router.route(host, path) {
            Some(m) => (m.target, http::HeaderValue::from_str(m.path_info).ok()),
            None => {
                self.metrics.count_rejection("no_route");
                return wasi_http_core::error_response(http::StatusCode::NOT_FOUND);
            }
        };
        let (name, service, written) = &self.routes[target];
        let headers = request.headers_mut();
        headers.remove(ROUTE_HEADER);
        headers.remove(PATH_INFO_HEADER);
        headers.insert(ROUTE_HEADER, written.clone());
        if let Some(info) = path_info {
            headers.insert(PATH_INFO_HEADER, info);
        }
        let mut response = service.handle(request, cx).await;
        response
            .extensions_mut()
            .insert(ComponentName(name.clone()));
        response
    }
}
