//! The on-disk cache of compiled components: hits, damaged and planted entries,
//! eviction.

use std::path::{Path, PathBuf};

use std::sync::OnceLock;

use wasi_http_cache::{CacheOutcome, ComponentCache, ComponentCacheConfig};
use wasi_http_core::RequestContext;
use wasi_http_host::p2::ProxyService;
use wasi_http_host::{EngineConfig, GuestOutput, ServiceConfig};
use wasmtime::Engine;

/// One engine for the whole test binary.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = EngineConfig::default();
        config.pooling = false;
        wasi_http_host::new_engine(&config).expect("engine").0
    })
}

fn guest_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../guests/wasm")
        .join(format!("{name}.wasm"))
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "wasi-http-cache-test-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read cache dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(guest_path(name)).expect("guest")
}

async fn serves_hello(component: &wasmtime::component::Component) {
    let mut config = ServiceConfig::default();
    config.guest_output = GuestOutput::Discard;
    let svc = ProxyService::new(engine(), component, config).expect("service");
    let request = test_support::get("http://localhost/", &[]);
    let response = svc
        .handle(request, RequestContext::new(http::uri::Scheme::HTTP))
        .await;
    let r = test_support::collect(response).await.expect("body");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Hello, wasi:http!\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_load_is_a_hit_and_serves() {
    let tmp = TempDir::new("hit");
    let cache = ComponentCache::open(&tmp.0, ComponentCacheConfig::default()).expect("open");
    let hello = wasm("hello");
    let (first, outcome) = cache.load(engine(), &hello).expect("compile");
    assert_eq!(outcome, CacheOutcome::Compiled);
    serves_hello(&first).await;
    let stored = entries(&tmp.0);
    assert_eq!(stored.len(), 1, "one entry: {stored:?}");
    assert_eq!(stored[0].extension().unwrap(), "cwasm");

    let (second, outcome) = cache.load(engine(), &hello).expect("load");
    assert_eq!(outcome, CacheOutcome::Hit);
    serves_hello(&second).await;

    // Another component is another entry.
    let (_, outcome) = cache.load(engine(), &wasm("echo")).expect("compile echo");
    assert_eq!(outcome, CacheOutcome::Compiled);
    assert_eq!(entries(&tmp.0).len(), 2);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_and_entries_must_be_ours_alone() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("perm");
    let cache = ComponentCache::open(&tmp.0, ComponentCacheConfig::default()).expect("open");
    let mode = std::fs::metadata(&tmp.0).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "created private");
    let hello = wasm("hello");
    cache.load(engine(), &hello).expect("compile");
    let entry = entries(&tmp.0).remove(0);
    assert_eq!(
        std::fs::metadata(&entry).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // An entry others could have written is not loaded, but replaced.
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (component, outcome) = cache.load(engine(), &hello).expect("recompile");
    assert_eq!(outcome, CacheOutcome::Compiled);
    serves_hello(&component).await;
    assert_eq!(
        std::fs::metadata(&entry).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A directory others can write is refused at open, and at load.
    std::fs::set_permissions(&tmp.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = ComponentCache::open(&tmp.0, ComponentCacheConfig::default()).unwrap_err();
    assert!(err.to_string().contains("writable by other users"), "{err}");
    let (component, outcome) = cache.load(engine(), &hello).expect("compile");
    assert_ne!(outcome, CacheOutcome::Hit);
    serves_hello(&component).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_entry_is_recompiled() {
    let tmp = TempDir::new("damaged");
    let cache = ComponentCache::open(&tmp.0, ComponentCacheConfig::default()).expect("open");
    let hello = wasm("hello");
    cache.load(engine(), &hello).expect("compile");
    let entry = entries(&tmp.0).remove(0);
    let good = std::fs::read(&entry).unwrap();

    // Truncated (as by a full disk), then garbage: both rejected by wasmtime's
    // checks, replaced, and the component still serves. The damaged file replaces
    // the entry by rename, as the cache itself does: rewriting a file in place
    // while a component maps it is what the cache never does (SIGBUS).
    for bad in [good[..good.len() / 2].to_vec(), vec![0x55; 4096]] {
        let tmp = tmp.0.join("damaged");
        std::fs::write(&tmp, &bad).unwrap();
        std::fs::rename(&tmp, &entry).unwrap();
        let (component, outcome) = cache.load(engine(), &hello).expect("recompile");
        assert_eq!(outcome, CacheOutcome::Compiled);
        serves_hello(&component).await;
        assert_eq!(std::fs::read(&entry).unwrap().len(), good.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_recently_used_entries_are_evicted_over_budget() {
    let tmp = TempDir::new("evict");
    let mut config = ComponentCacheConfig::default();
    // Room for about two of these small components.
    config.max_bytes = 0;
    let probe = ComponentCache::open(&tmp.0, config.clone()).expect("open");
    probe.load(engine(), &wasm("hello")).expect("compile");
    let one = std::fs::metadata(entries(&tmp.0).remove(0)).unwrap().len();
    std::fs::remove_dir_all(&tmp.0).unwrap();
    config.max_bytes = one * 5 / 2;
    let cache = ComponentCache::open(&tmp.0, config).expect("open");

    // Distinct components: the same guest with a different custom section.
    let variant = |n: u8| {
        let mut bytes = wasm("hello");
        // A custom section (id 0): name length 1, name "x", one payload byte.
        bytes.extend_from_slice(&[0, 3, 1, b'x', n]);
        bytes
    };
    let path_of = |bytes: &[u8]| {
        let before = entries(&tmp.0);
        cache.load(engine(), bytes).expect("compile");
        entries(&tmp.0)
            .into_iter()
            .find(|p| !before.contains(p))
            .expect("a new entry")
    };
    let a = path_of(&variant(1));
    std::thread::sleep(std::time::Duration::from_millis(20));
    let b = path_of(&variant(2));
    std::thread::sleep(std::time::Duration::from_millis(20));
    // Using `a` makes `b` the least recently used.
    assert_eq!(
        cache.load(engine(), &variant(1)).unwrap().1,
        CacheOutcome::Hit
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    let c = path_of(&variant(3));
    let left = entries(&tmp.0);
    assert!(left.contains(&a) && left.contains(&c), "{left:?}");
    assert!(!left.contains(&b), "b was evicted: {left:?}");
}
