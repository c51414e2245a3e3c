//! The checked-in guest components (`guests/wasm/*.wasm`) must have been built
//! from the current guest sources and WIT: `guests/build.sh` records the
//! sha256 of every input and output in `guests/wasm/MANIFEST.sha256`
//! (`sha256sum` format), and this test recomputes them. Inputs: the WASI 0.2
//! guests' `guests/src` and `crates/wasi-http-host/wit`, the WASI 0.3 guests'
//! `guests/p3` and `crates/wasi-http-host/wit-p3`, and `guests/build.sh`.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Guests that must be present in the manifest: the WASI 0.2 ones (from
/// `guests/src`), the WASI 0.3 ones (`p3-*`, from `guests/p3`) and the two
/// `wasi:cli/command` guests (`command-p2` from `guests/src/command.c`,
/// `command-p3` from `guests/p3/command.c`).
const GUESTS: &[&str] = &[
    "hello",
    "echo",
    "client",
    "fault",
    "p3-hello",
    "p3-echo",
    "p3-client",
    "p3-fault",
    "command-p2",
    "command-p3",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in digest.iter() {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// All files under `dir` (recursively), as repo-relative `/`-separated paths.
fn files_under(root: &Path, dir: &str, out: &mut Vec<String>) {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) => panic!("reading {}: {err}", dir.display()),
        };
        for entry in entries {
            let entry = entry.unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()));
            let path = entry.path();
            let file_type = entry
                .file_type()
                .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
            if file_type.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("path under the repo root");
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
    }
    walk(root, &root.join(dir), out);
}

fn stale_message(file: &str) -> String {
    format!("guest {file} is stale: run guests/build.sh and commit guests/wasm")
}

#[test]
fn built_guests_match_their_sources() {
    let root = repo_root();
    let manifest_rel = "guests/wasm/MANIFEST.sha256";
    let manifest = match fs::read(root.join(manifest_rel)) {
        Ok(bytes) => bytes,
        Err(err) => panic!("{} ({err})", stale_message(manifest_rel)),
    };

    // `<64 hex>  <path>` per line, exactly as `sha256sum` writes it.
    let mut listed: Vec<(String, String)> = Vec::new();
    for line in manifest.split(|&b| b == b'\n') {
        if line.is_empty() {
            continue;
        }
        let line = match std::str::from_utf8(line) {
            Ok(line) => line,
            Err(_) => panic!("{} (non-UTF-8 manifest line)", stale_message(manifest_rel)),
        };
        let valid = line.len() > 66
            && line.as_bytes()[..64]
                .iter()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            && &line[64..66] == "  ";
        if !valid {
            panic!(
                "{} (malformed manifest line {line:?})",
                stale_message(manifest_rel)
            );
        }
        listed.push((line[..64].to_owned(), line[66..].to_owned()));
    }

    let mut stale: Vec<String> = Vec::new();
    let mut mark = |file: &str| {
        if !stale.iter().any(|f| f == file) {
            stale.push(file.to_owned());
        }
    };

    // Every listed file still has the recorded contents.
    for (hash, file) in &listed {
        match fs::read(root.join(file)) {
            Ok(bytes) if sha256_hex(&bytes) == *hash => {}
            _ => mark(file),
        }
    }

    // Every current input is listed (a new source makes the build stale too).
    let mut inputs = Vec::new();
    files_under(&root, "guests/src", &mut inputs);
    files_under(&root, "guests/p3", &mut inputs);
    let mut wit = Vec::new();
    files_under(&root, "crates/wasi-http-host/wit", &mut wit);
    files_under(&root, "crates/wasi-http-host/wit-p3", &mut wit);
    inputs.extend(wit.into_iter().filter(|f| f.ends_with(".wit")));
    inputs.push("guests/build.sh".to_owned());
    // Every guest the tests rely on is built and listed.
    inputs.extend(GUESTS.iter().map(|g| format!("guests/wasm/{g}.wasm")));
    inputs.sort();
    for file in &inputs {
        if !listed.iter().any(|(_, f)| f == file) {
            mark(file);
        }
    }

    let report: Vec<String> = stale.iter().map(|f| stale_message(f)).collect();
    assert!(report.is_empty(), "{}", report.join("\n"));
}
