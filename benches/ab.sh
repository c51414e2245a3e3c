#!/usr/bin/env bash
# A/B of two `wasi-http` binaries (e.g. a build of an earlier commit against this
# one) on the 0.2 rows of compare.sh: hello fresh, hello with --instance-reuse 128,
# echo with 1 KiB POSTs. ROUNDS alternating 5 s wrk rounds (-t2 -c64) per row;
# prints each round (rps, p99, peak RSS) and the median of the rounds' B/A ratios.
# Usage: benches/ab.sh BIN_A BIN_B [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: benches/ab.sh BIN_A BIN_B [ROUNDS]" >&2; exit 2; }
A=$1
B=$2
ROUNDS=${3:-5}
# shellcheck source=benches/common.sh
source benches/common.sh
PORT=18111
OUT=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$OUT"' EXIT
post_script "$OUT/post.lua"
one() { # BIN MODE: "rps p99 rss"
  local bin=$1 mode=$2 args=() script=() guest=guests/wasm/hello.wasm
  case $mode in
    reuse) args=(--instance-reuse 128) ;;
    echo) guest=guests/wasm/echo.wasm script=(-s "$OUT/post.lua") ;;
  esac
  "$bin" serve --addr "127.0.0.1:$PORT" "$guest" "${args[@]}" >/dev/null 2>&1 &
  local pid=$!
  wait_port "127.0.0.1:$PORT"
  local out
  out=$(wrk -t2 -c64 -d5s --latency "${script[@]}" "http://127.0.0.1:$PORT/")
  local rss
  rss=$(peak_rss $pid)
  kill $pid
  wait $pid 2>/dev/null || true
  echo "$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out") $(awk '$1=="99%" {print $2}' <<<"$out") $rss"
}
for mode in fresh reuse echo; do
  ratios=()
  for r in $(seq "$ROUNDS"); do
    a=$(one "$A" $mode)
    b=$(one "$B" $mode)
    ratio=$(awk -v a="${a%% *}" -v b="${b%% *}" 'BEGIN {printf "%.3f", (a > 0) ? b / a : 0}')
    ratios+=("$ratio")
    echo "$mode round $r: A $a | B $b | B/A $ratio"
  done
  echo "$mode: median B/A $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}')"
done
