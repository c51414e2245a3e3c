#!/usr/bin/env bash
# Instructions per request of the in-process per-request path (store + instantiate +
# handle + drop; and with instance reuse), counted by callgrind: stable on a noisy
# machine, so regressions show without wrk. Runs the `per_request` example with N1
# and N2 requests and divides the difference, which cancels startup; only what runs
# inside the example's `block_on` is counted, so compilation (on rayon threads, in
# an order that varies) never is.
# Rows: the 0.2 hello guest fresh (memory copied in, the default, and mapped
# copy-on-write) and with reuse, the 0.3 p3-hello guest (0.3
# instances always serve many requests). With --p2-only, the 0.2 rows again from a
# build without the `p3` feature: Wasmtime without its component-model-async ABI,
# what an embedder who links only 0.2 pays (a second Wasmtime build, ~15 min cold).
# Usage: benches/callgrind.sh [--p2-only] [N1] [N2]
set -euo pipefail
cd "$(dirname "$0")/.."
P2_ONLY=
if [ "${1:-}" = --p2-only ]; then P2_ONLY=1; shift; fi
N1=${1:-20}
N2=${2:-220}
command -v valgrind >/dev/null || { echo "installing valgrind"; apt-get install -y -qq valgrind >/dev/null; }
EXE="${CARGO_TARGET_DIR:-target}/release/examples/per_request"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
instructions() { # GUEST N [reuse]
  valgrind --tool=callgrind --callgrind-out-file="$OUT/cg" --collect-atstart=no \
    --toggle-collect='tokio::runtime::runtime::Runtime::block_on*' "$EXE" "$@" \
    > /dev/null 2> "$OUT/log" || { cat "$OUT/log" >&2; exit 1; }
  awk '/^(summary|totals):/ {print $2; exit}' "$OUT/cg"
}
measure() { # LABEL GUEST [reuse]
  local label=$1 guest=$2
  shift 2
  local a b
  a=$(instructions "$guest" "$N1" "$@")
  b=$(instructions "$guest" "$N2" "$@")
  printf '%-36s %16d\n' "$label" $(( (b - a) / (N2 - N1) ))
}
printf '%-36s %16s\n' "path" "instructions/req"
cargo build --release -q --locked -p wasi-http-host --example per_request
measure "0.2 hello, fresh instance" guests/wasm/hello.wasm
PER_REQUEST_COW=1 measure "0.2 hello, fresh, memory mapped (CoW)" guests/wasm/hello.wasm
measure "0.2 hello, instance reuse" guests/wasm/hello.wasm reuse
measure "0.3 p3-hello (instances reused)" guests/wasm/p3-hello.wasm
if [ -n "$P2_ONLY" ]; then
  cargo build --release -q --locked -p wasi-http-host --example per_request \
    --no-default-features --features p2,client
  measure "0.2 hello, fresh, p2-only build" guests/wasm/hello.wasm
  measure "0.2 hello, reuse, p2-only build" guests/wasm/hello.wasm reuse
  # Leave the default build in place for the next run.
  cargo build --release -q --locked -p wasi-http-host --example per_request
fi
