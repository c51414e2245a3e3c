#!/usr/bin/env bash
# Reload under load: an app of two components (the C hello and echo guests)
# whose route /x/... is swapped between them by a reload every INTERVAL
# seconds (SIGHUP), under CONNS keep-alive connections of continuous requests
# (loopback). Prints per reload the requests, errors and latency (p50, p99,
# max) of the second before and the second after, and the totals; fails if
# any request failed. Usage: benches/reload.sh [SECONDS] [CONNS] [INTERVAL]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TOTAL=${1:-20}
CONNS=${2:-16}
INTERVAL=${3:-1.5}
REL="${CARGO_TARGET_DIR:-target}/release"
cargo build --release -q --locked -p wasi-http-cli -p test-support --bin wasi-http --bin reload-load
OUT=$(mktemp -d)
SERVER=
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$OUT"' EXIT
cp guests/wasm/hello.wasm guests/wasm/echo.wasm "$OUT/"
for target in hello echo; do
  cat > "$OUT/$target.toml" <<TOML
[components.hello]
source = "hello.wasm"
[components.echo]
source = "echo.wasm"
[[routes]]
path = "/x/..."
component = "$target"
TOML
done
cp "$OUT/hello.toml" "$OUT/app.toml"
"$REL/wasi-http" serve --config "$OUT/app.toml" --addr 127.0.0.1:0 --cache-dir "$OUT/cache" \
  --no-access-log 2>"$OUT/log" &
SERVER=$!
for _ in $(seq 1 600); do
  ADDR=$(sed -n 's|^Serving HTTP on http://\(.*\)/$|\1|p' "$OUT/log")
  [ -n "$ADDR" ] && break
  sleep 0.1
done
[ -n "$ADDR" ] || { cat "$OUT/log" >&2; exit 1; }
status=0
"$REL/reload-load" "$ADDR" /x/ "$SECONDS_TOTAL" "$CONNS" "$INTERVAL" "$SERVER" "$OUT/app.toml" \
  "$OUT/echo.toml" "$OUT/hello.toml" || status=$?
rss=$(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/$SERVER/status")
echo "server: $(grep -c 'reloaded' "$OUT/log") reloads done, $(grep -c 'reload failed' "$OUT/log") failed, peak RSS $rss"
exit $status
