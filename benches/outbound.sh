#!/usr/bin/env bash
# Outbound benchmark: the client guest forwards each incoming request to a local
# native origin (`hello-origin`). wrk drives `wasi-http serve` and, when `wasmtime` 48
# is installed, `wasmtime serve` on the same guest in the same run. Prints rps, p50,
# p99, errors and how many connections the origin accepted.
# Usage: benches/outbound.sh [SECONDS] [CONNS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-20}
CONNS=${2:-64}
GUEST=guests/wasm/client.wasm

# shellcheck source=benches/common.sh
source benches/common.sh
cargo build --release -q -p wasi-http-cli -p test-support --bin wasi-http --bin hello-origin
BIN=$REL/wasi-http

ORIGIN_PORT=18090
run() { # name port pid
  $REL/hello-origin "127.0.0.1:$ORIGIN_PORT" >/dev/null &
  local origin=$!
  wait_port "127.0.0.1:$ORIGIN_PORT"
  local url="http://127.0.0.1:$2/" hdr="x-url: http://127.0.0.1:$ORIGIN_PORT/"
  curl -sf -H "$hdr" "$url" >/dev/null || { echo "$1: warm-up request failed" >&2; kill $origin; return 1; }
  local out
  out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -H "$hdr" "$url")
  local conns
  conns=$(curl -s "http://127.0.0.1:$ORIGIN_PORT/__connections")
  kill $origin; wait $origin 2>/dev/null || true
  local rps p50 p99 reqs errors rss
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  errors=$(awk '/Non-2xx/ {n+=$NF} /Socket errors/ {gsub(",", ""); n+=$4+$6+$8+$10} END {print n+0}' <<<"$out")
  rss=$(peak_rss "$3")
  printf '%-18s %10s %9s %9s %9s %7s %12s %9s\n' "$1" "$rps" "$p50" "$p99" "$reqs" "$errors" "$((conns - 1))" "$rss"
  echo "$rps" > "/tmp/outbound-rps-$1"
}

printf '%-18s %10s %9s %9s %9s %7s %12s %9s\n' "server" "rps" "p50" "p99" "requests" "errors" "origin conns" "peak RSS"
$BIN serve "$GUEST" --addr 127.0.0.1:18091 --allow-network 127.0.0.1/32 2>/dev/null &
PID_A=$!
trap 'kill $PID_A ${PID_B:-} 2>/dev/null || true' EXIT
wait_port 127.0.0.1:18091
run wasi-http 18091 $PID_A
kill $PID_A; wait $PID_A 2>/dev/null || true

if has_wasmtime48; then
  wasmtime serve --addr 127.0.0.1:18092 "$GUEST" 2>/dev/null &
  PID_B=$!
  wait_port 127.0.0.1:18092
  run wasmtime-serve 18092 $PID_B
  kill $PID_B; wait $PID_B 2>/dev/null || true
  awk -v a="$(cat /tmp/outbound-rps-wasi-http)" -v b="$(cat /tmp/outbound-rps-wasmtime-serve)" \
    'BEGIN { printf "ratio wasi-http / wasmtime serve: %.2fx\n", a / b }'
else
  echo "wasmtime 48 not installed: skipping the comparison (cargo install wasmtime-cli --version 48.0.8 --locked)"
fi
