#!/usr/bin/env bash
# Streaming throughput, one invocation, one machine: a request body of MiB (default
# 1 GiB, sent with content-length) streamed through the echo guest and back, TRIPS
# times per server: native hyper echoing the body (`hello-origin` /__echo), `wasmtime
# serve` 48 (when installed) and `wasi-http serve`, all loaded by `stream-client` (a
# lean hyper client, so the load tool takes little of the shared cores); then
# both again with the WASI 0.3 echo guest (p3-echo); then wasi-http with the 0.2
# guest and curl uploading a tmpfs file. Prints one table: median, min
# and max of the round-trip throughput (GB/s = 10^9 bytes/s), server peak RSS and
# the median's ratio to native.
# Usage: benches/echo-stream.sh [MiB] [TRIPS]
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-1024}
TRIPS=${2:-5}
BYTES=$((MIB * 1048576))
# shellcheck source=benches/common.sh
source benches/common.sh
cargo build --release -q -p wasi-http-cli -p test-support --bin wasi-http --bin hello-origin --bin stream-client
PORT=18098
OUT=$(mktemp -d)
FILE=$(mktemp -p /dev/shm 2>/dev/null || mktemp)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$OUT" "$FILE"' EXIT
ECHO=guests/wasm/echo.wasm
ECHO_P3=guests/wasm/p3-echo.wasm

# row NAME PATH CLIENT(lean|curl) -- server command...
row() {
  local name=$1 path=$2 client=$3
  shift 4
  "$@" >/dev/null 2>&1 &
  local pid=$!
  wait_port "127.0.0.1:$PORT"
  local url="http://127.0.0.1:$PORT$path"
  : > "$OUT/rates"
  for _ in $(seq 1 "$TRIPS"); do
    case $client in
      lean) "$REL/stream-client" "$url" "$BYTES" 1 | awk '$4 == '"$BYTES"' {print $8}' >> "$OUT/rates" ;;
      curl) curl -s -T "$FILE" -o /dev/null -w '%{size_download} %{speed_download}\n' "$url" |
              awk '$1 == '"$BYTES"' {print $2}' >> "$OUT/rates" ;;
    esac
  done
  local got
  got=$(wc -l < "$OUT/rates")
  [ "$got" = "$TRIPS" ] || echo "$name: $((TRIPS - got)) of $TRIPS trips did not echo every byte" >&2
  local stats
  stats=$(sort -n "$OUT/rates" | awk '{v[NR]=$1} END {if (NR) printf "%.2f %.2f %.2f", v[int((NR+1)/2)]/1e9, v[1]/1e9, v[NR]/1e9}')
  printf '%s|%s|%s|%s\n' "$name" "$client" "$stats" "$(peak_rss $pid)" >> "$OUT/rows"
  kill $pid; wait $pid 2>/dev/null || true
}

: > "$OUT/rows"
row "native hyper echo" /__echo lean -- "$REL/hello-origin" "127.0.0.1:$PORT"
if has_wasmtime48; then
  row "wasmtime serve 48" / lean -- wasmtime serve --addr "127.0.0.1:$PORT" "$ECHO"
else
  echo "wasmtime 48 not installed: skipping its row" >&2
  echo "(cargo install wasmtime-cli --version 48.0.8 --locked, ~25 min)" >&2
fi
row "wasi-http serve" / lean -- "$REL/wasi-http" serve "$ECHO" --addr "127.0.0.1:$PORT" --max-request-body 0 --no-access-log
# WASI 0.3: the p3-echo guest pipes its request's stream<u8> into its response's.
if has_wasmtime48; then
  row "wasmtime serve 48 (0.3)" / lean -- wasmtime serve --addr "127.0.0.1:$PORT" -Sp3 -Wcomponent-model-async "$ECHO_P3"
fi
row "wasi-http serve (0.3)" / lean -- "$REL/wasi-http" serve "$ECHO_P3" --addr "127.0.0.1:$PORT" --max-request-body 0 --no-access-log
head -c "$BYTES" /dev/zero > "$FILE"
row "wasi-http serve" / curl -- "$REL/wasi-http" serve "$ECHO" --addr "127.0.0.1:$PORT" --max-request-body 0 --no-access-log
rm -f "$FILE"

echo
echo "echo $MIB MiB, $TRIPS trips per row (GB/s = 10^9 bytes/s)"
printf '| %-24s | %-6s | %-11s | %-8s | %-8s | %-13s | %-9s |\n' server client "median GB/s" "min" "max" "server peak RSS" "vs native"
printf '|%s|\n' "--------------------------|--------|-------------|----------|----------|-----------------|-----------"
awk -F'|' '
  { split($3, s, " "); name[NR]=$1; client[NR]=$2; med[NR]=s[1]; lo[NR]=s[2]; hi[NR]=s[3]; rss[NR]=$4
    if ($1 == "native hyper echo") native = s[1] }
  END { for (i = 1; i <= NR; i++)
          printf "| %-24s | %-6s | %-11s | %-8s | %-8s | %-15s | %-9s |\n", name[i], client[i], med[i], lo[i], hi[i], rss[i],
                 (native > 0 ? sprintf("%.2fx", med[i] / native) : "-") }' "$OUT/rows"
