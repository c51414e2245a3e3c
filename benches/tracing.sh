#!/usr/bin/env bash
# What tracing costs a request: `wasi-http serve` on the C hello guest (instance
# reuse), without tracing, exporting every span to a live OTLP/HTTP collector
# (hello-origin's /v1/traces, which keeps nothing) with every trace sampled and
# with 10%, and to a dead one (a port that refuses); PAIRS alternating 5 s wrk rounds of the three, medians, and the
# median ratios to the untraced rows. Usage: benches/tracing.sh [CONNS] [PAIRS]
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-64}
PAIRS=${2:-5}
# shellcheck source=benches/common.sh
source benches/common.sh
cargo build --release -q --locked -p wasi-http-cli -p test-support --bin wasi-http --bin hello-origin
PORT=18097
SINK=18098
DEAD=18099 # nothing listens there
OUT=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$OUT"' EXIT
"$REL/hello-origin" "127.0.0.1:$SINK" >/dev/null &
wait_port "127.0.0.1:$SINK"

# round LABEL ARGS...: one 5 s wrk round against a server started with ARGS.
round() {
  local label=$1
  shift
  "$REL/wasi-http" serve guests/wasm/hello.wasm --addr "127.0.0.1:$PORT" --instance-reuse 128 "$@" \
    >/dev/null 2>&1 &
  local pid=$!
  wait_port "127.0.0.1:$PORT"
  curl -sf "http://127.0.0.1:$PORT/" >/dev/null
  local out
  out=$(wrk -t2 -c"$CONNS" -d5s --latency "http://127.0.0.1:$PORT/")
  local rps p99
  rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$label|$rps|$p99" >> "$OUT/rounds"
}
: > "$OUT/rounds"
for _ in $(seq "$PAIRS"); do
  round "off"
  round "live collector" --otlp-endpoint "http://127.0.0.1:$SINK"
  round "live, 10% sampled" --otlp-endpoint "http://127.0.0.1:$SINK" --trace-sample-ratio 0.1
  round "dead collector" --otlp-endpoint "http://127.0.0.1:$DEAD"
done
echo "hello guest, reuse 128, wrk -t2 -c$CONNS, $PAIRS alternating 5 s rounds"
printf '%-18s %10s %10s %14s\n' tracing "rps" "p99" "ratio to off"
awk -F'|' "$AWK_STATS"'
  { if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 }
    rps[$1] = rps[$1] " " $2; p99[$1] = p99[$1] " " ms($3)
    if ($1 == "off") base = $2; else if (base > 0) ratio[$1] = ratio[$1] " " $2 / base }
  END { for (i = 1; i <= n; i++) { l = order[i]
    r = (l == "off") ? "-" : sprintf("%.2fx", median(ratio[l]))
    printf "%-18s %10.0f %8.2fms %14s\n", l, median(rps[l]), median(p99[l]), r } }' "$OUT/rounds"
