//! Integration tests of the library: real guest components driven through the
//! embedder API (async via `ProxyService`, and the sync bindings).

mod client_phases;
mod common;
mod fault;
mod guests_fresh;
mod linking;
mod outbound;
mod pool;
mod proxy;
mod reuse;
mod sync_api;
