//! The deployment files: the image's command line and the Kubernetes
//! Deployment's are one the CLI accepts and serves with (run here, on loopback,
//! with the ConfigMap's settings), and the fields that matter agree with each
//! other. Schema validation is `.ci/run`'s (kubernetes-validate).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use test_support::{get, send, ServeProcess};

use super::{guest, BIN};

fn deploy(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// The JSON array after `key` on its line (exec-form instructions, flow lists).
fn json_list(text: &str, key: &str) -> Vec<String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no `{key}` line"));
    serde_json::from_str(line[key.len()..].trim()).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// The value after `key` on the first line that has it, after `after`.
fn value_after<'a>(text: &'a str, after: &str, key: &str) -> &'a str {
    let start = text.find(after).unwrap_or_else(|| panic!("no `{after}`"));
    text[start..]
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no `{key}` after `{after}`"))
        .trim()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifests_command_line_serves() {
    let containerfile = deploy("Containerfile");
    let entrypoint = json_list(&containerfile, "ENTRYPOINT");
    assert_eq!(entrypoint, ["/usr/local/bin/wasi-http"]);
    let cmd = json_list(&containerfile, "CMD");
    let deployment = deploy("kubernetes/deployment.yaml");
    let args = json_list(&deployment, "args:");
    // The Deployment keeps the image's command and adds to it.
    assert!(args.starts_with(&cmd), "{args:?} does not extend {cmd:?}");
    assert!(
        containerfile.contains("--portable"),
        "the image's component must load on any node"
    );

    // The same command line, on loopback, with a component of ours and the
    // ConfigMap's settings file.
    let dir = std::env::temp_dir().join(format!("wasi-http-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let component = dir.join("app.cwasm");
    let status = std::process::Command::new(BIN)
        .args(["compile", &guest("hello"), "--portable", "-o"])
        .arg(&component)
        .status()
        .unwrap();
    assert!(status.success());
    let configmap = deploy("kubernetes/configmap.yaml");
    let toml_start = configmap
        .find("wasi-http.toml: |")
        .expect("the settings file")
        + "wasi-http.toml: |".len();
    let settings: String = configmap[toml_start..]
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .map(|l| format!("{l}\n"))
        .collect();
    let config = dir.join("wasi-http.toml");
    std::fs::write(&config, settings).unwrap();
    let mut run: Vec<String> = Vec::new();
    let mut i = 1; // after `serve`, which the launcher adds
    while i < args.len() {
        match args[i].as_str() {
            // The launcher picks a loopback port.
            "--addr" => i += 1,
            "--metrics-addr" => {
                run.extend(["--metrics-addr".into(), "127.0.0.1:0".into()]);
                i += 1;
            }
            "/app/app.cwasm" => run.push(component.to_string_lossy().into_owned()),
            "/etc/wasi-http/wasi-http.toml" => run.push(config.to_string_lossy().into_owned()),
            other => run.push(other.to_owned()),
        }
        i += 1;
    }
    let run: Vec<&str> = run.iter().map(String::as_str).collect();
    let server = ServeProcess::spawn(BIN, &run);
    let r = server.get("/").await;
    assert_eq!(r.status, 200);
    let metrics = server.metrics_addr.expect("metrics address");
    let started = Instant::now();
    loop {
        let ready = send(
            metrics,
            get(&format!("http://{metrics}/readyz"), &[]),
            false,
        )
        .await;
        if ready.map(|r| r.status.as_u16()).ok() == Some(200) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // JSON logs, as the Deployment asks.
    let access = server.wait_for_log_lines("wasi_http::access", 1);
    assert!(
        access.first().is_some_and(|l| l.starts_with('{')),
        "{}",
        server.stderr()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_manifests_agree_with_each_other() {
    let deployment = deploy("kubernetes/deployment.yaml");
    let args = json_list(&deployment, "args:");
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .map(|i| args[i + 1].clone())
            .unwrap_or_default()
    };
    // Ports: the container's named ports are the ones the server binds.
    assert!(flag("--addr").ends_with(":8080"));
    assert!(flag("--metrics-addr").ends_with(":9090"));
    assert_eq!(
        value_after(&deployment, "name: http\n", "containerPort:"),
        "8080"
    );
    assert_eq!(
        value_after(&deployment, "name: metrics\n", "containerPort:"),
        "9090"
    );
    // Probes: readiness and startup on /readyz, liveness on /healthz, all on
    // the metrics port.
    assert_eq!(
        value_after(&deployment, "readinessProbe:", "path:"),
        "/readyz"
    );
    assert_eq!(
        value_after(&deployment, "startupProbe:", "path:"),
        "/readyz"
    );
    assert_eq!(
        value_after(&deployment, "livenessProbe:", "path:"),
        "/healthz"
    );
    for probe in ["readinessProbe:", "startupProbe:", "livenessProbe:"] {
        assert_eq!(
            value_after(&deployment, probe, "port:"),
            "metrics",
            "{probe}"
        );
    }
    // Termination: the grace period covers preStop and the drain.
    let grace: u64 = value_after(
        &deployment,
        "spec:\n      #",
        "terminationGracePeriodSeconds:",
    )
    .parse()
    .unwrap();
    let pre_stop: u64 = value_after(&deployment, "preStop:", "seconds:")
        .parse()
        .unwrap();
    let drain: u64 = flag("--shutdown-timeout")
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert!(grace > pre_stop + drain, "{grace} <= {pre_stop} + {drain}");
    // Hardening the image allows.
    assert_eq!(
        value_after(&deployment, "securityContext:", "runAsNonRoot:"),
        "true"
    );
    assert_eq!(
        value_after(&deployment, "containers:", "readOnlyRootFilesystem:"),
        "true"
    );
    assert!(
        args.contains(&"--no-cache".to_owned()),
        "a read-only root has no cache"
    );
    // The Service and the autoscaler point at the Deployment.
    let service = deploy("kubernetes/service.yaml");
    assert_eq!(
        value_after(&service, "selector:", "app.kubernetes.io/name:"),
        "wasi-http-app"
    );
    assert_eq!(value_after(&service, "name: http", "targetPort:"), "http");
    let hpa = deploy("kubernetes/hpa.yaml");
    assert_eq!(
        value_after(&hpa, "scaleTargetRef:", "name:"),
        "wasi-http-app"
    );
    assert_eq!(
        value_after(&deployment, "configMap:", "name:"),
        "wasi-http-app"
    );
}
