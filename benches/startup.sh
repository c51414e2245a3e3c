#!/usr/bin/env bash
# Startup: time from launch to the first 200 response (curl polling every 5 ms), for
# a first launch (compiling, empty cache) and then RUNS launches with the compiled
# component cached on disk; wasi-http serve and, when installed, wasmtime serve 48
# (its own cache, `-C cache=y` with a private cache directory); then wasi-http serve
# of the component precompiled with `wasi-http compile` and no cache at all (a
# container's cold start: every launch is a first one). Prints a table.
# Usage: benches/startup.sh [WASM] [RUNS]
#   WASM defaults to the componentize-py hello guest built by interop/run.sh, else
#   the C hello guest.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/common.sh
source benches/common.sh
INTEROP=${WASI_HTTP_INTEROP_CACHE:-$HOME/.cache/wasi-http-interop}
WASM=${1:-$(ls -t "$INTEROP"/build/py-hello-*.wasm 2>/dev/null | head -1)}
WASM=${WASM:-guests/wasm/hello.wasm}
RUNS=${2:-5}
cargo build --release -q -p wasi-http-cli
PORT=18099
OUT=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$OUT"' EXIT

# launch CMD...: prints milliseconds from launch to the first 200.
launch() {
  local t0 pid
  t0=$(date +%s%N)
  "$@" >/dev/null 2>&1 &
  pid=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$PORT/"; do
    kill -0 $pid 2>/dev/null || { echo "server exited" >&2; return 1; }
    sleep 0.005
  done
  echo $(( ($(date +%s%N) - t0) / 1000000 ))
  kill $pid; wait $pid 2>/dev/null || true
}

# series NAME CMD...: one first launch, then RUNS cached launches.
series() {
  local name=$1
  shift
  local first cached=()
  first=$(launch "$@")
  for _ in $(seq 1 "$RUNS"); do cached+=("$(launch "$@")"); done
  local stats
  stats=$(printf '%s\n' "${cached[@]}" | sort -n | awk '{v[NR]=$1} END {printf "%s|%s|%s", v[int((NR+1)/2)], v[1], v[NR]}')
  printf '%s|%s|%s\n' "$name" "$first" "$stats" >> "$OUT/rows"
}

: > "$OUT/rows"
series "wasi-http serve" "$REL/wasi-http" serve "$WASM" --addr "127.0.0.1:$PORT" --cache-dir "$OUT/wasi-http-cache"
if has_wasmtime48; then
  cat > "$OUT/wasmtime-cache.toml" <<TOML
[cache]
directory = "$OUT/wasmtime-cache"
TOML
  series "wasmtime serve 48" wasmtime serve -S cli=y -C cache=y -C cache-config="$OUT/wasmtime-cache.toml" --addr "127.0.0.1:$PORT" "$WASM"
else
  echo "wasmtime 48 not installed: skipping its row" >&2
fi
"$REL/wasi-http" compile "$WASM" -o "$OUT/precompiled.cwasm" 2>/dev/null
series "precompiled, no cache" "$REL/wasi-http" serve "$OUT/precompiled.cwasm" --allow-precompiled --no-cache --addr "127.0.0.1:$PORT"

echo
echo "$(basename "$WASM") ($(( $(stat -c %s "$WASM") / 1000 )) kB): launch to first 200, ms; cached: $RUNS launches"
printf '| %-18s | %-16s | %-13s | %-6s | %-6s |\n' server "first (compile)" "cached median" min max
printf '|%s|\n' "--------------------|------------------|---------------|--------|--------"
awk -F'|' '{printf "| %-18s | %-16s | %-13s | %-6s | %-6s |\n", $1, $2, $3, $4, $5}' "$OUT/rows"
