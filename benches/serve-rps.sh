#!/usr/bin/env bash
# Load benchmark: wrk on loopback against `wasi-http serve` with the hello guest and,
# when `wasmtime` 48 is installed, `wasmtime serve` on the same guest in the same run.
# Prints a table (rps, p50, p99, server peak RSS) and the ratio. Usage: benches/serve-rps.sh [SECONDS] [CONNS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-64}
GUEST=guests/wasm/hello.wasm

# shellcheck source=benches/common.sh
source benches/common.sh
cargo build --release -q -p wasi-http-cli
BIN=$REL/wasi-http

run_wrk() { # name url pid
  local out
  curl -sf "$2" >/dev/null || { echo "$1: warm-up request failed" >&2; return 1; }
  out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "$2")
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  local rss
  rss=$(peak_rss "$3")
  printf '%-28s %12s %10s %10s %10s  %s\n' "$1" "$rps" "$p50" "$p99" "$rss" "$errors"
  echo "$rps" > "/tmp/serve-rps-$1"
}

PORT_A=18081
PORT_B=18082
printf '%-28s %12s %10s %10s %10s\n' "server (hello guest)" "rps" "p50" "p99" "peak RSS"

$BIN serve "$GUEST" --addr "127.0.0.1:$PORT_A" 2>/dev/null &
PID_A=$!
trap 'kill $PID_A ${PID_B:-} 2>/dev/null || true' EXIT
wait_port "127.0.0.1:$PORT_A"
run_wrk wasi-http "http://127.0.0.1:$PORT_A/" "$PID_A"
kill $PID_A; wait $PID_A 2>/dev/null || true

if has_wasmtime48; then
  wasmtime serve --addr "127.0.0.1:$PORT_B" "$GUEST" 2>/dev/null &
  PID_B=$!
  wait_port "127.0.0.1:$PORT_B"
  run_wrk wasmtime-serve "http://127.0.0.1:$PORT_B/" "$PID_B"
  kill $PID_B; wait $PID_B 2>/dev/null || true
  awk -v a="$(cat /tmp/serve-rps-wasi-http)" -v b="$(cat /tmp/serve-rps-wasmtime-serve)" \
    'BEGIN { printf "ratio wasi-http / wasmtime serve: %.2fx\n", a / b }'
else
  echo "wasmtime 48 not installed: skipping the comparison"
  echo "(cargo install wasmtime-cli --version 48.0.8 --locked, ~25 min)"
fi
