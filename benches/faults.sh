#!/usr/bin/env bash
# Page faults, context switches and server CPU per request under load: what
# instantiation costs beyond instructions (copy-on-write faults each take a TLB
# shootdown, an interrupt to every core running the process, slow in a VM), which
# callgrind cannot see. Starts `BIN serve [ARGS...] GUEST`, loads it with wrk -t2
# -c64 (CONNS=N for another) for SECONDS, and counts with `perf stat`'s software
# events (they work where the hardware counters are not supported) over the middle
# of the run. POST=1 sends 1 KiB POST bodies (the echo guests). BIN may be
# `wasmtime` (same `serve` syntax).
# Usage: benches/faults.sh BIN GUEST [SECONDS] [-- SERVE-ARGS...]
# e.g.   benches/faults.sh target/release/wasi-http "$(bash interop/run.sh --built py3 hello)"
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: benches/faults.sh BIN GUEST [SECONDS] [-- SERVE-ARGS...]" >&2; exit 2; }
BIN=$1
GUEST=$2
shift 2
SECONDS_=5
if [ $# -gt 0 ] && [ "$1" != -- ]; then SECONDS_=$1; shift; fi
[ "${1:-}" = -- ] && shift
# shellcheck source=benches/common.sh
source benches/common.sh
command -v perf >/dev/null || { echo "installing perf"; apt-get install -y -qq linux-perf >/dev/null; }
PORT=18113
OUT=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$OUT"' EXIT
"$BIN" serve --addr "127.0.0.1:$PORT" "$@" "$GUEST" >/dev/null 2>&1 &
pid=$!
wait_port "127.0.0.1:$PORT"
curl -sf "http://127.0.0.1:$PORT/" >/dev/null || { echo "warm-up request failed" >&2; exit 1; }
script=()
if [ -n "${POST:-}" ]; then post_script "$OUT/post.lua"; script=(-s "$OUT/post.lua"); fi
wrk -t2 -c"${CONNS:-64}" -d"$((SECONDS_ + 2))s" --latency "${script[@]}" "http://127.0.0.1:$PORT/" > "$OUT/wrk" &
load=$!
sleep 1
perf stat -x, -e page-faults,context-switches,cpu-clock -p "$pid" -o "$OUT/stat" -- sleep "$SECONDS_" >/dev/null 2>&1
wait $load
rss=$(peak_rss $pid)
kill $pid
wait $pid 2>/dev/null || true
awk -F, -v secs="$SECONDS_" -v rss="$rss" '
  FNR == NR { if ($0 ~ /Requests\/sec/) { split($0, f, " "); rps = f[2] } if ($0 ~ /^ +99%/) { split($0, f, " "); p99 = f[2] } next }
  $3 == "page-faults" { faults = $1 } $3 == "context-switches" { cs = $1 } $3 == "cpu-clock" { cpu = $1 }
  END {
    n = rps * secs
    if (n <= 0) { print "no requests completed" > "/dev/stderr"; exit 1 }
    printf "%10s %12s %10s %14s %9s %9s\n", "rps", "faults/req", "cs/req", "cpu-us/req", "p99", "peak RSS"
    printf "%10.0f %12.3f %10.3f %14.1f %9s %9s\n", rps, faults / n, cs / n, cpu * 1000 / n, p99, rss
  }' "$OUT/wrk" "$OUT/stat"
