#!/usr/bin/env bash
# Side-by-side load benchmark, one invocation, one machine: a native hyper hello world
# (`hello-origin`), `wasmtime serve` 48 (when installed) and `wasi-http serve`, on the
# hello guest (fresh instance per request, and instance reuse) and the echo guest
# (1 KiB POST bodies), with wrk over HTTP/1.1; then HTTP/2 rows with h2load.
# Prints one table: rps, p50, p99, server peak RSS, ratio to the wasmtime row. Then
# alternates short runs of native hyper and wasi-http with instance reuse, PAIRS
# times, and prints the median of the pairs' ratios: this machine's speed drifts by
# tens of percent between rows a minute apart, which a single pair of rows shows as
# a ratio anywhere between 0.34x and 0.52x.
# Last, the guests people deploy, built by the interop suite into its cache: the WASI
# 0.3 C p3-hello and componentize-py hello, and the WASI 0.2 componentize-py and
# jco hello and echo (1 KiB POST bodies), fresh and with instance reuse: PAIRS
# alternating 5 s rounds of `wasmtime serve` and `wasi-http serve`, both at their
# defaults otherwise, with the medians of each host's rows and of the rounds' ratios.
# ONLY=c, ONLY=p3 or ONLY=guests runs one part (the C 0.2 table, the 0.3 rows, the
# Python and JavaScript 0.2 rows); P3_ONLY=1 is ONLY=p3.
# Usage: benches/compare.sh [SECONDS] [CONNS] [REUSE] [PAIRS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-64}
REUSE=${3:-128}
PAIRS=${4:-5}
ONLY=${ONLY:-${P3_ONLY:+p3}}
HELLO=guests/wasm/hello.wasm
ECHO=guests/wasm/echo.wasm

# shellcheck source=benches/common.sh
source benches/common.sh
command -v h2load >/dev/null || { echo "installing h2load"; apt-get install -y -qq nghttp2-client >/dev/null; }
cargo build --release -q -p wasi-http-cli -p test-support --bin wasi-http --bin hello-origin
BIN=$REL/wasi-http
PORT=18095
OUT=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$OUT"' EXIT

post_script "$OUT/post.lua"

# row NAME KIND(wrk|wrk-post|h2) -- server command...: starts it, loads it, stops it.
row() {
  local name=$1 kind=$2
  shift 3
  "$@" >/dev/null 2>&1 &
  local pid=$!
  wait_port "127.0.0.1:$PORT"
  local url="http://127.0.0.1:$PORT/"
  curl -sf "$url" >/dev/null || { echo "$name: warm-up request failed" >&2; kill $pid; return 0; }
  local rps p50 p99 rss
  case $kind in
    wrk|wrk-post)
      local script=()
      [ "$kind" = wrk-post ] && script=(-s "$OUT/post.lua")
      local out
      out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "${script[@]}" "$url")
      # Successful responses per second: a host that answers errors fast (as
      # wasmtime serve does to a reused ComponentizeJS instance) gets no credit.
      rps=$(awk '/requests in/ { n = $1; secs = $4 + 0; if ($4 ~ /m,?$/) secs *= 60 } /Non-2xx/ { bad = $NF }
        END { if (secs > 0) printf "%.0f", (n - bad) / secs }' <<<"$out")
      p50=$(awk '$1=="50%" {print $2}' <<<"$out")
      p99=$(awk '$1=="99%" {print $2}' <<<"$out")
      if grep -q "Non-2xx\|Socket errors" <<<"$out"; then
        echo "$name: $(grep "Non-2xx\|Socket errors" <<<"$out" | tr '\n' ' ')" >&2
      fi
      ;;
    h2)
      local out
      out=$(h2load -D "$DURATION" -c "$CONNS" -m 10 -t 2 "$url" 2>&1)
      rps=$(awk '/finished in/ {gsub(",", ""); for (i=1;i<=NF;i++) if ($i ~ /req\/s/) printf "%.0f", $(i-1)}' <<<"$out")
      # h2load reports per-request time as min/max/mean/sd; the mean stands in for p50.
      p50=$(awk '/time for request:/ {print $6}' <<<"$out")
      p99="n/a"
      ;;
  esac
  rss=$(peak_rss $pid)
  kill $pid; wait $pid 2>/dev/null || true
  printf '%s|%s|%s|%s|%s\n' "$name" "$rps" "$p50" "$p99" "$rss" >> "${ROWS:-$OUT/rows}"
}

: > "$OUT/rows"
if [ -z "$ONLY" ] || [ "$ONLY" = c ]; then
row "native hyper hello" wrk -- $REL/hello-origin "127.0.0.1:$PORT"
if has_wasmtime48; then
  row "wasmtime hello fresh" wrk -- wasmtime serve --addr "127.0.0.1:$PORT" "$HELLO"
  row "wasmtime hello reuse" wrk -- wasmtime serve --addr "127.0.0.1:$PORT" --max-instance-reuse-count "$REUSE" "$HELLO"
  row "wasmtime echo 1KiB" wrk-post -- wasmtime serve --addr "127.0.0.1:$PORT" "$ECHO"
else
  echo "wasmtime 48 not installed: skipping its rows" >&2
  echo "(cargo install wasmtime-cli --version 48.0.8 --locked, ~25 min)" >&2
fi
row "wasi-http hello fresh" wrk -- $BIN serve --addr "127.0.0.1:$PORT" "$HELLO"
row "wasi-http hello reuse" wrk -- $BIN serve --addr "127.0.0.1:$PORT" --instance-reuse "$REUSE" "$HELLO"
row "wasi-http echo 1KiB" wrk-post -- $BIN serve --addr "127.0.0.1:$PORT" "$ECHO"
row "native hyper hello h2" h2 -- $REL/hello-origin "127.0.0.1:$PORT"
row "wasi-http hello fresh h2" h2 -- $BIN serve --addr "127.0.0.1:$PORT" "$HELLO"
row "wasi-http hello reuse h2" h2 -- $BIN serve --addr "127.0.0.1:$PORT" --instance-reuse "$REUSE" "$HELLO"
: > "$OUT/pairs"
for _ in $(seq "$PAIRS"); do
  ROWS=$OUT/pairs DURATION=5 row native wrk -- $REL/hello-origin "127.0.0.1:$PORT"
  if has_wasmtime48; then
    ROWS=$OUT/pairs DURATION=5 row wasmtime wrk -- wasmtime serve --addr "127.0.0.1:$PORT" --max-instance-reuse-count "$REUSE" "$HELLO"
  fi
  ROWS=$OUT/pairs DURATION=5 row reuse wrk -- $BIN serve --addr "127.0.0.1:$PORT" --instance-reuse "$REUSE" "$HELLO"
done

echo
echo "wrk -t2 -c$CONNS -d${DURATION}s (h2load -c$CONNS -m10 -t2 -D$DURATION for h2), loopback, release builds"
printf '%-26s %9s %9s %9s %9s %12s\n' "server" "rps" "p50" "p99" "peak RSS" "vs wasmtime"
awk -F'|' '
  { name[NR]=$1; rps[NR]=$2; p50[NR]=$3; p99[NR]=$4; rss[NR]=$5; by[$1]=$2 }
  END {
    for (i = 1; i <= NR; i++) {
      base = ""
      if (name[i] ~ /hello fresh$/) base = by["wasmtime hello fresh"]
      if (name[i] ~ /hello reuse$/) base = by["wasmtime hello reuse"]
      if (name[i] ~ /echo/) base = by["wasmtime echo 1KiB"]
      # wasmtime serve speaks HTTP/1.1 only: no ratio for the h2 rows.
      if (name[i] ~ / h2$/) base = ""
      ratio = (base != "" && base > 0) ? sprintf("%.2fx", rps[i] / base) : "-"
      printf "%-26s %9s %9s %9s %9s %12s\n", name[i], rps[i], p50[i], p99[i], rss[i], ratio
    }
    if (by["native hyper hello"] > 0 && by["wasi-http hello reuse"] > 0)
      printf "wasi-http hello reuse / native hyper: %.2fx (these two rows only)\n", by["wasi-http hello reuse"] / by["native hyper hello"]
  }' "$OUT/rows"
# median_ratio BASE: the median over the rounds of (wasi-http reuse / BASE).
median_ratio() {
  awk -F'|' -v base="$1" '
    $1 == base { b = $2 }
    $1 == "reuse" && b > 0 { n++; ratio[n] = $2 / b; list = list sprintf(" %.2f", $2 / b) }
    END {
      if (n == 0) exit
      # Insertion sort: n is small.
      for (i = 2; i <= n; i++) { v = ratio[i]; j = i - 1; while (j > 0 && ratio[j] > v) { ratio[j + 1] = ratio[j]; j-- } ratio[j + 1] = v }
      median = (n % 2) ? ratio[(n + 1) / 2] : (ratio[n / 2] + ratio[n / 2 + 1]) / 2
      printf "wasi-http hello reuse / %s, %d alternating 5 s rounds:%s; median %.2fx\n", base, n, list, median
    }' "$OUT/pairs"
}
median_ratio native
median_ratio wasmtime
fi

# --- guests people deploy: alternating rounds of both hosts ------------------------
# WASI 0.3 is on by default in wasmtime 48; asked for anyway, with the cli
# interfaces componentize-py's guests import.
WASMTIME_P3=(-Scli -Sp3 -Wcomponent-model-async)
# alternate LABEL KIND GUEST [WASMTIME-ARGS...] -- [WASI-HTTP-ARGS...]: PAIRS rounds,
# each wasmtime then wasi-http, into $OUT/alt.
alternate() {
  local label=$1 kind=$2 guest=$3 theirs=() ours=()
  shift 3
  while [ $# -gt 0 ] && [ "$1" != -- ]; do theirs+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  ours=("$@")
  for _ in $(seq "$PAIRS"); do
    if has_wasmtime48; then
      ROWS=$OUT/alt DURATION=5 row "$label|wasmtime" "$kind" -- wasmtime serve --addr "127.0.0.1:$PORT" "${theirs[@]}" "$guest"
    fi
    ROWS=$OUT/alt DURATION=5 row "$label|wasi-http" "$kind" -- $BIN serve --addr "127.0.0.1:$PORT" "${ours[@]}" "$guest"
  done
}
built() { bash interop/run.sh --built "$1" "$2" || { echo "could not build the $1 $2 guest" >&2; exit 1; }; }
: > "$OUT/alt"
if [ -z "$ONLY" ] || [ "$ONLY" = p3 ]; then
  PY3_HELLO=$(built py3 hello)
  alternate "C p3-hello" wrk guests/wasm/p3-hello.wasm "${WASMTIME_P3[@]}"
  alternate "py3 hello" wrk "$PY3_HELLO" "${WASMTIME_P3[@]}"
fi
if [ -z "$ONLY" ] || [ "$ONLY" = guests ]; then
  for lang in py js; do
    hello=$(built $lang hello)
    echo=$(built $lang echo)
    # `wasmtime serve` links wasi:cli, which these guests import, only when asked.
    alternate "$lang hello fresh" wrk "$hello" -Scli
    alternate "$lang hello reuse" wrk "$hello" -Scli --max-instance-reuse-count "$REUSE" -- --instance-reuse "$REUSE"
    alternate "$lang echo fresh" wrk-post "$echo" -Scli
    alternate "$lang echo reuse" wrk-post "$echo" -Scli --max-instance-reuse-count "$REUSE" -- --instance-reuse "$REUSE"
  done
fi
[ -s "$OUT/alt" ] || exit 0
echo
echo "Guests people deploy: wrk -t2 -c$CONNS, $PAIRS alternating 5 s rounds per row, both hosts at defaults"
echo "(reuse: $REUSE requests per instance on both; echo: 1 KiB POST bodies; rps: 2xx responses per second;"
echo " rps, p50, p99: medians of the rounds; peak RSS: the largest; ratio: median of the rounds' rps ratios)"
printf '%-16s %-10s %9s %9s %9s %9s %14s\n' "guest" "host" "rps" "p50" "p99" "peak RSS" "vs wasmtime"
awk -F'|' "$AWK_STATS"'
  # wrk prints latencies as 850.00us, 1.23ms or 1.05s.
  {
    key = $1 "|" $2
    if (!(key in seen)) { seen[key] = 1; order[++n] = key }
    rps[key] = rps[key] " " $3; p50[key] = p50[key] " " ms($4); p99[key] = p99[key] " " ms($5)
    r = $6 + 0; if (r > rss[key]) rss[key] = r
    if ($2 == "wasmtime") last[$1] = $3
    if ($2 == "wasi-http" && last[$1] > 0) ratios[$1] = ratios[$1] " " $3 / last[$1]
  }
  END {
    for (i = 1; i <= n; i++) {
      split(order[i], k, "|")
      ratio = (k[2] == "wasi-http" && ratios[k[1]] != "") ? sprintf("%.2fx", median(ratios[k[1]])) : "-"
      printf "%-16s %-10s %9.0f %7.2fms %7.2fms %6dMiB %14s\n", k[1], k[2], median(rps[order[i]]), median(p50[order[i]]), median(p99[order[i]]), rss[order[i]], ratio
    }
  }' "$OUT/alt"
