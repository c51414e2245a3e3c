#!/usr/bin/env bash
# Instructions per request of the in-process per-request path (store + instantiate +
# handle + drop; and with instance reuse), counted by callgrind: stable on a noisy
# machine, so regressions show without wrk. Runs the `per_request` example with N1
# and N2 requests and divides the difference, which cancels startup and compilation.
# Usage: benches/callgrind.sh [N1] [N2]
set -euo pipefail
cd "$(dirname "$0")/.."
N1=${1:-20}
N2=${2:-220}
command -v valgrind >/dev/null || { echo "installing valgrind"; apt-get install -y -qq valgrind >/dev/null; }
cargo build --release -q -p wasi-http-host --example per_request
EXE="${CARGO_TARGET_DIR:-target}/release/examples/per_request"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
instructions() { # N [reuse]
  valgrind --tool=callgrind --callgrind-out-file="$OUT/cg" "$EXE" guests/wasm/hello.wasm "$@" \
    > /dev/null 2> "$OUT/log"
  awk '/^summary:/ {print $2}' "$OUT/cg"
}
printf '%-22s %16s\n' "hello guest" "instructions/req"
for mode in fresh reuse; do
  extra=()
  [ "$mode" = reuse ] && extra=(reuse)
  a=$(instructions "$N1" "${extra[@]}")
  b=$(instructions "$N2" "${extra[@]}")
  printf '%-22s %16d\n' "$mode" $(( (b - a) / (N2 - N1) ))
done
