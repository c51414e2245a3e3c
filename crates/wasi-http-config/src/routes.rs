//! Routes: which component answers a request, by host and path, and the
//! precedence between routes that both match.

/// What a route's path matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathPattern {
    /// Exactly this path (`/a/b`).
    Exact(String),
    /// This path and everything below it (written `/a/...`; `/...` is every
    /// path): the base without the trailing `/...`.
    Prefix(String),
}

impl PathPattern {
    /// Reads `/a/b` (exact) or `/a/...` (prefix).
    pub fn parse(path: &str) -> Result<PathPattern, String> {
        if !path.starts_with('/') {
            return Err(format!("route path `{path}` must start with `/`"));
        }
        if path.contains(['?', '#']) || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "route path `{path}` must be a plain path (no query, fragment or spaces)"
            ));
        }
        if let Some(base) = path.strip_suffix("/...") {
            if base.contains("...") {
                return Err(format!(
                    "route path `{path}`: `...` only at the end, as `/...`"
                ));
            }
            return Ok(PathPattern::Prefix(base.to_owned()));
        }
        if path.contains("...") {
            return Err(format!(
                "route path `{path}`: a prefix route ends in `/...`"
            ));
        }
        Ok(PathPattern::Exact(path.to_owned()))
    }

    /// The path-info for `path` if it matches: what follows the base of a prefix
    /// (`""` or `/rest`), `""` for an exact match.
    fn matches<'p>(&self, path: &'p str) -> Option<&'p str> {
        match self {
            PathPattern::Exact(p) => (path == p).then_some(""),
            PathPattern::Prefix(base) => {
                let rest = path.strip_prefix(base.as_str())?;
                (rest.is_empty() || rest.starts_with('/')).then_some(rest)
            }
        }
    }

    /// As written in the file.
    pub fn written(&self) -> String {
        match self {
            PathPattern::Exact(p) => p.clone(),
            PathPattern::Prefix(base) => format!("{base}/..."),
        }
    }
}

/// What a route's host matches (the request's authority without its port).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Exactly this host (case-insensitive).
    Exact(String),
    /// Any subdomain of this suffix (written `*.example.com`; stored as
    /// `.example.com`), not the domain itself.
    Suffix(String),
}

impl HostPattern {
    /// Reads `a.example.com` or `*.example.com`.
    pub fn parse(host: &str) -> Result<HostPattern, String> {
        let lower = host.to_ascii_lowercase();
        let valid = |name: &str| {
            !name.is_empty()
                && name.split('.').all(|l| {
                    !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        };
        match lower.strip_prefix("*.") {
            Some(suffix) if valid(suffix) => Ok(HostPattern::Suffix(format!(".{suffix}"))),
            None if valid(&lower) => Ok(HostPattern::Exact(lower)),
            _ => Err(format!(
                "route host `{host}` must be a host name (`a.example.com`) or a wildcard \
                 (`*.example.com`), without a port"
            )),
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => host == h,
            HostPattern::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
        }
    }

    /// How specific it is: an exact host beats any wildcard, a longer suffix a
    /// shorter one.
    fn rank(&self) -> usize {
        match self {
            HostPattern::Exact(_) => usize::MAX,
            HostPattern::Suffix(s) => s.len(),
        }
    }
}

/// One route: a host (or any) and a path, and what answers them (an index the
/// caller gives meaning to: a component, or a chain of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The host, or none for any host.
    pub host: Option<HostPattern>,
    /// The path.
    pub path: PathPattern,
    /// What answers (the caller's index).
    pub target: usize,
}

/// Two routes that match the same requests with the same precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConflict {
    /// The path, as written.
    pub path: String,
    /// The host, as written, if any.
    pub host: Option<String>,
}

impl std::fmt::Display for RouteConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            Some(host) => write!(f, "two routes for host `{host}` and path `{}`", self.path),
            None => write!(f, "two routes for path `{}` (no host)", self.path),
        }?;
        f.write_str(": which one answers would be a silent pick; keep one, or give one a host")
    }
}

impl std::error::Error for RouteConflict {}

/// The routes in order of precedence: the first that matches answers.
#[derive(Debug, Clone)]
pub struct Router {
    /// Each route with its index in the list given to [`Router::new`].
    routes: Vec<(usize, Route)>,
}

/// The route a request takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched<'a> {
    /// What answers (the route's target).
    pub target: usize,
    /// The route's index in the list given to [`Router::new`].
    pub route: usize,
    /// What the path has beyond the route's base (`""` or `/rest`).
    pub path_info: &'a str,
}

impl Router {
    /// Orders `routes` by precedence: a route with a host before one without
    /// (an exact host before a wildcard, a longer wildcard before a shorter),
    /// then an exact path before a prefix, then a longer prefix before a
    /// shorter. Two routes with the same host and path are a conflict.
    pub fn new(routes: Vec<Route>) -> Result<Router, RouteConflict> {
        let mut seen = std::collections::HashSet::new();
        for r in &routes {
            if !seen.insert((&r.host, &r.path)) {
                return Err(RouteConflict {
                    path: r.path.written(),
                    host: r.host.as_ref().map(|h| match h {
                        HostPattern::Exact(h) => h.clone(),
                        HostPattern::Suffix(s) => format!("*{s}"),
                    }),
                });
            }
        }
        let mut routes: Vec<(usize, Route)> = routes.into_iter().enumerate().collect();
        routes.sort_by_key(|(i, r)| {
            let host = r.host.as_ref().map_or(0, |h| h.rank().saturating_add(1));
            let (exact, len) = match &r.path {
                PathPattern::Exact(p) => (1, p.len()),
                PathPattern::Prefix(base) => (0, base.len()),
            };
            // Highest first; the index only makes the order total (two routes
            // with equal keys cannot both match one request).
            (std::cmp::Reverse((host, exact, len)), *i)
        });
        Ok(Router { routes })
    }

    /// The route for a request to `host` (its authority; a port is ignored) and
    /// `path` (without the query).
    pub fn route<'p>(&self, host: Option<&str>, path: &'p str) -> Option<Matched<'p>> {
        let host = host.map(normalize_host);
        self.routes.iter().find_map(|(i, r)| {
            if let Some(pattern) = &r.host {
                if !host.as_deref().is_some_and(|h| pattern.matches(h)) {
                    return None;
                }
            }
            r.path.matches(path).map(|path_info| Matched {
                target: r.target,
                route: *i,
                path_info,
            })
        })
    }

    /// The routes in order of precedence.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().map(|(_, r)| r)
    }
}

/// The host of an authority: lowercase, without the port and a trailing dot.
fn normalize_host(authority: &str) -> String {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: Option<&str>, path: &str, target: usize) -> Route {
        Route {
            host: host.map(|h| HostPattern::parse(h).unwrap()),
            path: PathPattern::parse(path).unwrap(),
            target,
        }
    }

    /// The precedence table of the README: request → route that answers.
    #[test]
    fn precedence() {
        let router = Router::new(vec![
            route(None, "/...", 0),
            route(None, "/api/...", 1),
            route(None, "/api/v2/...", 2),
            route(None, "/api/health", 3),
            route(Some("*.example.com"), "/...", 4),
            route(Some("admin.example.com"), "/...", 5),
            route(Some("*.eu.example.com"), "/api/...", 6),
        ])
        .unwrap();
        for (host, path, target, info) in [
            ("x.test", "/", 0, "/"),
            ("x.test", "/other", 0, "/other"),
            ("x.test", "/api", 1, ""),
            ("x.test", "/api/users", 1, "/users"),
            ("x.test", "/apix", 0, "/apix"),
            ("x.test", "/api/v2/users", 2, "/users"),
            ("x.test", "/api/health", 3, ""),
            ("x.test:8080", "/api/health", 3, ""),
            ("a.example.com", "/api/health", 4, "/api/health"),
            ("A.Example.Com.", "/", 4, "/"),
            ("example.com", "/", 0, "/"),
            ("admin.example.com", "/api", 5, "/api"),
            ("admin.example.com:443", "/", 5, "/"),
            ("a.eu.example.com", "/api/x", 6, "/x"),
            ("a.eu.example.com", "/web", 4, "/web"),
        ] {
            let m = router
                .route(Some(host), path)
                .unwrap_or_else(|| panic!("{host} {path}"));
            assert_eq!((m.target, m.path_info), (target, info), "{host} {path}");
        }
        assert_eq!(router.route(None, "/api").map(|m| m.target), Some(1));
    }

    #[test]
    fn no_match_and_conflicts() {
        let router = Router::new(vec![
            route(None, "/a", 0),
            route(Some("h.test"), "/b/...", 1),
        ])
        .unwrap();
        assert!(router.route(Some("x.test"), "/b").is_none());
        assert!(router.route(Some("x.test"), "/a/b").is_none());
        let conflict =
            Router::new(vec![route(None, "/a/...", 0), route(None, "/a/...", 1)]).unwrap_err();
        assert!(conflict.to_string().contains("/a/..."), "{conflict}");
        let conflict = Router::new(vec![
            route(Some("*.x.test"), "/", 0),
            route(Some("*.X.test"), "/", 1),
        ])
        .unwrap_err();
        assert_eq!(conflict.host.as_deref(), Some("*.x.test"));
        // The same path with and without a host is no conflict: the host wins.
        Router::new(vec![route(None, "/a", 0), route(Some("h.test"), "/a", 1)]).unwrap();
    }

    #[test]
    fn patterns_are_checked() {
        for bad in ["a", "/a?b", "/a b", "/.../x", "/a...", "/a/.../..."] {
            assert!(PathPattern::parse(bad).is_err(), "{bad}");
        }
        for bad in ["", "*.", "a..b", "h.test:80", "*x.test", "a/b", "*.*.test"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            PathPattern::parse("/...").unwrap(),
            PathPattern::Prefix(String::new())
        );
    }
}
