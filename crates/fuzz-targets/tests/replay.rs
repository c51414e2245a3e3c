//! The fuzz targets on stable Rust, as part of `cargo test`: every committed seed
//! and crash input (`fuzz/seeds/TARGET/`, `fuzz/regressions/TARGET/`), and a few
//! thousand pseudo-random inputs per target from a fixed seed. The coverage-guided
//! runs are `fuzz/run.sh` (see `fuzz/README.md`).

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(target: &str, kind: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read input");
            (p, bytes)
        })
        .collect()
}

#[test]
fn committed_seeds_and_crash_inputs_pass() {
    for (name, run) in fuzz_targets::TARGETS {
        let seeds = inputs(name, "seeds");
        assert!(!seeds.is_empty(), "fuzz/seeds/{name}/ has no seeds");
        for (path, bytes) in seeds.iter().chain(inputs(name, "regressions").iter()) {
            eprintln!("{}", path.display());
            run(bytes);
        }
    }
}

#[test]
fn every_target_has_a_libfuzzer_binary() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for (name, _) in fuzz_targets::TARGETS {
        let file = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let source = std::fs::read_to_string(&file).expect("a target file");
        assert!(
            source.contains(&format!("fuzz_targets::{name}(")),
            "{}",
            file.display()
        );
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml: {name}"
        );
    }
}

#[test]
fn pseudo_random_inputs() {
    // xorshift64*, fixed seed: the same inputs on every run.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    for (_, run) in fuzz_targets::TARGETS {
        for _ in 0..3000 {
            let len = (next() % 512) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            run(&bytes);
        }
    }
}
