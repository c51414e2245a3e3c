//! Reload without dropping a request: SIGHUP and --watch swap what serves
//! atomically, a bad file leaves the old version serving, TLS files are read
//! again, and under load no request fails.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use test_support::{get, send, ServeProcess};

use super::app::{app_file, request};
use super::BIN;

/// An app with one route, `/x/...`, to `component`.
fn routed_to(component: &str) -> String {
    format!(
        "[components.hello]\nsource = \"hello.wasm\"\n\
         [components.echo]\nsource = \"echo.wasm\"\n\
         [[routes]]\npath = \"/x/...\"\ncomponent = \"{component}\"\n"
    )
}

/// Which component answered `/x/`: hello says hello, echo echoes.
async fn who(server: &ServeProcess) -> &'static str {
    let r = request(server, "x.test", "/x/", &[]).await;
    assert_eq!(r.status, 200);
    if r.text().starts_with("Hello") {
        "hello"
    } else {
        "echo"
    }
}

fn reloads(server: &ServeProcess) -> usize {
    server
        .stderr()
        .lines()
        .filter(|l| l.contains("reloaded"))
        .count()
}

fn wait_reloads(server: &ServeProcess, n: usize) {
    let lines = server.wait_for_log_lines_within("reloaded", n, Duration::from_secs(30));
    assert!(lines.len() >= n, "{}", server.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_routes_and_bad_files_keep_the_old_version() {
    let (dir, file) = app_file(&routed_to("hello"));
    let server = ServeProcess::spawn(BIN, &["--config", &file]);
    assert_eq!(who(&server).await, "hello");

    std::fs::write(&file, routed_to("echo")).unwrap();
    server.send_signal("HUP");
    wait_reloads(&server, 1);
    assert_eq!(who(&server).await, "echo");

    // A file that does not parse: logged, and echo keeps serving.
    std::fs::write(&file, "[[routes]\n").unwrap();
    server.send_signal("HUP");
    let failed = server.wait_for_log_lines_within("reload failed", 1, Duration::from_secs(10));
    assert!(failed[0].contains("app.toml"), "{failed:?}");
    assert_eq!(who(&server).await, "echo");

    // A component that is not one: the same.
    std::fs::write(&file, routed_to("hello")).unwrap();
    std::fs::write(dir.join("hello.wasm"), b"not wasm").unwrap();
    server.send_signal("HUP");
    let failed = server.wait_for_log_lines_within("reload failed", 2, Duration::from_secs(10));
    assert!(failed[1].contains("hello.wasm"), "{failed:?}");
    assert_eq!(who(&server).await, "echo");

    // A server-wide setting: reported, not applied.
    std::fs::copy(super::guest("hello"), dir.join("hello.wasm")).unwrap();
    std::fs::write(&file, format!("workers = 7\n{}", routed_to("hello"))).unwrap();
    server.send_signal("HUP");
    wait_reloads(&server, 2);
    assert!(
        server.wait_for_log("`workers` changed"),
        "{}",
        server.stderr()
    );
    assert_eq!(who(&server).await, "hello");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reloads_when_a_file_changes() {
    let (dir, file) = app_file(&routed_to("hello"));
    let server = ServeProcess::spawn(BIN, &["--config", &file, "--watch"]);
    assert_eq!(who(&server).await, "hello");
    // Replaced by a rename, as editors and deploy tools do.
    let tmp = dir.join("app.toml.new");
    std::fs::write(&tmp, routed_to("echo")).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    wait_reloads(&server, 1);
    assert_eq!(who(&server).await, "echo");
    // A component's file changing reloads too.
    std::fs::copy(super::guest("echo"), dir.join("hello.wasm")).unwrap();
    wait_reloads(&server, 2);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_single_component_reloads_too() {
    let (dir, _) = app_file("");
    let wasm = dir.join("hello.wasm");
    let server = ServeProcess::spawn(BIN, &[wasm.to_str().unwrap()]);
    assert!(server.get("/").await.text().starts_with("Hello"));
    std::fs::copy(super::guest("echo"), &wasm).unwrap();
    server.send_signal("HUP");
    wait_reloads(&server, 1);
    assert!(!server.get("/").await.text().starts_with("Hello"));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_certificates_are_read_again() {
    let dir = std::env::temp_dir().join(format!("wasi-http-reload-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let first = test_support::TestTls::new();
    let second = test_support::TestTls::new();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let write = |tls: &test_support::TestTls| {
        let (c, k) = tls.server_cert_pem();
        std::fs::write(&cert, c).unwrap();
        std::fs::write(&key, k).unwrap();
    };
    write(&first);
    let server = ServeProcess::spawn(
        BIN,
        &[
            &super::guest("hello"),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    // Each test CA trusts only its own certificate.
    assert!(test_support::tls_get(server.addr, &first.roots())
        .await
        .is_ok());
    assert!(test_support::tls_get(server.addr, &second.roots())
        .await
        .is_err());
    write(&second);
    server.send_signal("HUP");
    wait_reloads(&server, 1);
    assert!(test_support::tls_get(server.addr, &second.roots())
        .await
        .is_ok());
    assert!(test_support::tls_get(server.addr, &first.roots())
        .await
        .is_err());
    // Broken files: the certificate in use stays.
    std::fs::write(&key, "not a key").unwrap();
    server.send_signal("HUP");
    server.wait_for_log_lines_within("reload failed", 1, Duration::from_secs(10));
    assert!(test_support::tls_get(server.addr, &second.roots())
        .await
        .is_ok());
    let _ = std::fs::remove_dir_all(dir);
}

/// Ten reloads swapping `/x/` between two components under continuous load:
/// no request fails, and every request sent after a reload's `reloaded` line
/// is answered by the new component.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_reloads_under_load_fail_no_request() {
    let (dir, file) = app_file(&routed_to("hello"));
    let server = Arc::new(ServeProcess::spawn(BIN, &["--config", &file]));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // (sent at, answered by) of every request; failures counted apart.
    let log: Arc<Mutex<Vec<(Instant, &'static str)>>> = Arc::default();
    let failed = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (server, stop, log, failed) =
            (server.clone(), stop.clone(), log.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let r = send(server.addr, get("/x/", &[("host", "x.test")]), false).await;
                match r {
                    Ok(r) if r.status == 200 => {
                        let by = if r.text().starts_with("Hello") {
                            "hello"
                        } else {
                            "echo"
                        };
                        log.lock().unwrap().push((sent, by));
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let mut switches = Vec::new();
    for i in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let next = if i % 2 == 0 { "echo" } else { "hello" };
        // From here on, either component may answer until the reload is seen.
        let triggered = Instant::now();
        std::fs::write(&file, routed_to(next)).unwrap();
        let before = reloads(&server);
        server.send_signal("HUP");
        wait_reloads(&server, before + 1);
        // Seen after the line was written: the swap had happened.
        switches.push((triggered, Instant::now(), next));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let log = log.lock().unwrap();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests");
    assert!(log.len() > 100, "{} requests", log.len());
    for (i, (_, at, component)) in switches.iter().enumerate() {
        // Until the next reload was triggered.
        let until = switches.get(i + 1).map(|s| s.0);
        for (sent, by) in log.iter() {
            if sent > at && until.is_none_or(|u| *sent < u) {
                assert_eq!(
                    by, component,
                    "a request sent after reload {i} went to the old component"
                );
            }
        }
    }
    eprintln!("observed: {} requests over 10 reloads, 0 failed", log.len());
    drop(log);
    let _ = std::fs::remove_dir_all(dir);
}
