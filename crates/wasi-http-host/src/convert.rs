//! Conversions between `http`'s method and scheme and a version's generated
//! `method` and `scheme` variants (the same cases in 0.2 and 0.3), written once.

/// Adds `to_http` and `from_http` to the generated `Method` and `Scheme` of the
/// `types` module at `$types`.
macro_rules! method_and_scheme_conversions {
    ($types:path) => {
        use $types as generated_types;

        impl generated_types::Method {
            /// `http`'s method; `None` when an `other` method is not a token.
            pub fn to_http(&self) -> Option<http::Method> {
                use generated_types::Method as M;
                Some(match self {
                    M::Get => http::Method::GET,
                    M::Head => http::Method::HEAD,
                    M::Post => http::Method::POST,
                    M::Put => http::Method::PUT,
                    M::Delete => http::Method::DELETE,
                    M::Connect => http::Method::CONNECT,
                    M::Options => http::Method::OPTIONS,
                    M::Trace => http::Method::TRACE,
                    M::Patch => http::Method::PATCH,
                    M::Other(s) => return wasi_http_core::uri::parse_method(s),
                })
            }

            /// The WIT method of `http`'s.
            pub fn from_http(method: &http::Method) -> Self {
                use generated_types::Method as M;
                match *method {
                    http::Method::GET => M::Get,
                    http::Method::HEAD => M::Head,
                    http::Method::POST => M::Post,
                    http::Method::PUT => M::Put,
                    http::Method::DELETE => M::Delete,
                    http::Method::CONNECT => M::Connect,
                    http::Method::OPTIONS => M::Options,
                    http::Method::TRACE => M::Trace,
                    http::Method::PATCH => M::Patch,
                    ref other => M::Other(other.as_str().to_owned()),
                }
            }
        }

        impl generated_types::Scheme {
            /// `http`'s scheme; `None` when an `other` scheme is not valid syntax.
            pub fn to_http(&self) -> Option<http::uri::Scheme> {
                use generated_types::Scheme as S;
                match self {
                    S::Http => Some(http::uri::Scheme::HTTP),
                    S::Https => Some(http::uri::Scheme::HTTPS),
                    S::Other(s) => wasi_http_core::uri::parse_scheme(s),
                }
            }

            /// The WIT scheme of `http`'s.
            pub fn from_http(scheme: &http::uri::Scheme) -> Self {
                use generated_types::Scheme as S;
                if *scheme == http::uri::Scheme::HTTP {
                    S::Http
                } else if *scheme == http::uri::Scheme::HTTPS {
                    S::Https
                } else {
                    S::Other(scheme.as_str().to_owned())
                }
            }
        }
    };
}

pub(crate) use method_and_scheme_conversions;
