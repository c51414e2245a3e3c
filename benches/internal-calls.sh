#!/usr/bin/env bash
# Internal calls against the same call over the network: one app whose `front`
# component (the client guest) calls `echo` (the echo guest), either as
# http://echo.internal/ (in-process) or as http://127.0.0.1:PORT/echo/ (a
# loopback request to the same server: pooled client, hyper, admission), and
# `echo` called directly for the baseline. wrk -t2 -cCONNS, ROUNDS alternating
# rounds of SECONDS each, for the WASI 0.2 and the 0.3 guests; prints rps and
# p50/p99 per row (medians) and the median ratio internal/network.
# Usage: benches/internal-calls.sh [SECONDS] [CONNS] [ROUNDS]   (default 5 32 3)
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
SECONDS_EACH=${1:-5}
CONNS=${2:-32}
ROUNDS=${3:-3}
cargo build --release -q --locked -p wasi-http-cli --bin wasi-http
OUT=$(mktemp -d)
SERVER=
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$OUT"' EXIT
PORT=$(( 20000 + RANDOM % 20000 ))
ADDR=127.0.0.1:$PORT

for v in p2 p3; do
  prefix=""; [ "$v" = p3 ] && prefix="p3-"
  cp "guests/wasm/${prefix}client.wasm" "$OUT/$v-client.wasm"
  cp "guests/wasm/${prefix}echo.wasm" "$OUT/$v-echo.wasm"
done
echo "instance-reuse = 128" > "$OUT/app.toml"
for v in p2 p3; do
  cat >> "$OUT/app.toml" <<TOML
[components.$v-front]
source = "$v-client.wasm"
call = ["$v-echo"]
allow-network = ["127.0.0.1/32"]
[components.$v-echo]
source = "$v-echo.wasm"
[[routes]]
path = "/$v/front/..."
component = "$v-front"
[[routes]]
path = "/$v/echo/..."
component = "$v-echo"
TOML
done
"$REL/wasi-http" serve --config "$OUT/app.toml" --addr "$ADDR" --cache-dir "$OUT/cache" \
  --no-access-log 2>"$OUT/log" &
SERVER=$!
wait_port "$ADDR"

# row NAME PATH [HEADER]: one wrk run -> "rps p50 p99" appended to $OUT/NAME
row() {
  local name=$1 path=$2 header=${3:-}
  local args=(-t2 -c"$CONNS" -d"${SECONDS_EACH}s" --latency)
  [ -n "$header" ] && args+=(-H "$header")
  wrk "${args[@]}" "http://$ADDR$path" >"$OUT/wrk" 2>&1
  if grep -q "Non-2xx" "$OUT/wrk"; then
    echo "$name: non-2xx responses:" >&2; cat "$OUT/wrk" >&2; exit 1
  fi
  awk '/Requests\/sec/ {r=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {print r, p50, p99}' \
    "$OUT/wrk" >>"$OUT/$name"
}

for round in $(seq 1 "$ROUNDS"); do
  for v in p2 p3; do
    row "$v-direct" "/$v/echo/"
    row "$v-internal" "/$v/front/" "x-url: http://$v-echo.internal/$v/echo/"
    row "$v-network" "/$v/front/" "x-url: http://$ADDR/$v/echo/"
  done
done

printf '%-12s %10s %10s %10s %s\n' row rps p50_ms p99_ms "internal/network"
for v in p2 p3; do
  for kind in direct internal network; do
    awk "$AWK_STATS"'
      { r = r " " $1; p50 = p50 " " ms($2); p99 = p99 " " ms($3) }
      END { printf "%-12s %10.0f %10.3f %10.3f", name, median(r), median(p50), median(p99) }' \
      name="$v-$kind" "$OUT/$v-$kind"
    if [ "$kind" = network ]; then
      paste -d' ' "$OUT/$v-internal" "$OUT/$v-network" | awk "$AWK_STATS"'
        { q = q " " $1 / $4 } END { printf " %8.2fx", median(q) }'
    fi
    echo
  done
done
