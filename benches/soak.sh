#!/usr/bin/env bash
# Soak: SECONDS (default 600) of mixed load on loopback against four `wasi-http
# serve` processes (hello, echo, the client guest fetching from a chaos origin
# that answers slowly, stalls or resets, and the fault guest trapping on a
# fraction of requests), with uploads and downloads cut off mid-body; every
# minute a row of requests by outcome and each server's RSS, descriptors,
# requests in flight and connections (the client server's outbound ones too).
# Fails when a request hung (no response, no reset, 30 s), an echo came back
# different, a server died, work or connections did not drain, or memory or
# descriptors grew past the first minutes' level. See soak-client.rs.
# Usage: benches/soak.sh [SECONDS] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TOTAL=${1:-600}
CONCURRENCY=${2:-24}
REL="${CARGO_TARGET_DIR:-target}/release"
cargo build --release -q --locked -p wasi-http-cli -p test-support \
  --bin wasi-http --bin chaos-origin --bin soak-client
OUT=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$OUT"
}
trap cleanup EXIT

ORIGIN_PORT=$(( 20000 + RANDOM % 20000 ))
"$REL/chaos-origin" "127.0.0.1:$ORIGIN_PORT" 2>"$OUT/origin.log" &
PIDS+=($!)

# serve NAME ARGS...: starts a server on free ports, waits for both its lines.
SPECS=()
serve() {
  local name=$1
  shift
  "$REL/wasi-http" serve --addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 --no-access-log "$@" \
    2>"$OUT/$name.log" &
  local pid=$!
  PIDS+=("$pid")
  local addr="" metrics=""
  for _ in $(seq 1 600); do
    addr=$(sed -n 's|^Serving HTTP on http://\(.*\)/$|\1|p' "$OUT/$name.log")
    metrics=$(sed -n 's|^Metrics on http://\(.*\)/metrics$|\1|p' "$OUT/$name.log")
    [ -n "$addr" ] && [ -n "$metrics" ] && break
    sleep 0.1
  done
  if [ -z "$addr" ] || [ -z "$metrics" ]; then
    echo "$name did not start:" >&2
    cat "$OUT/$name.log" >&2
    exit 1
  fi
  SPECS+=("$name=$addr,$pid,$metrics")
}
serve hello guests/wasm/hello.wasm --instance-reuse 128
serve echo guests/wasm/echo.wasm
serve client guests/wasm/client.wasm --allow-network 127.0.0.1/32
serve fault guests/wasm/fault.wasm --request-timeout 2s

echo "soak: ${SECONDS_TOTAL}s, $CONCURRENCY concurrent clients, origin 127.0.0.1:$ORIGIN_PORT"
status=0
"$REL/soak-client" "$SECONDS_TOTAL" "$CONCURRENCY" "http://127.0.0.1:$ORIGIN_PORT/" "${SPECS[@]}" ||
  status=$?
for name in hello echo client fault; do
  if grep -q "panicked" "$OUT/$name.log"; then
    echo "FAIL: $name panicked:" >&2
    grep -A5 panicked "$OUT/$name.log" >&2
    status=1
  fi
done
exit $status
