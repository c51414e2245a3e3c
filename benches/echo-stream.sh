#!/usr/bin/env bash
# Streaming throughput: a 1 GiB request body (a file on tmpfs, sent with
# content-length) through the echo guest and back, three times; prints each
# round trip's throughput and the server's peak RSS.
# Usage: benches/echo-stream.sh [MiB]
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-1024}
# shellcheck source=benches/common.sh
source benches/common.sh
cargo build --release -q -p wasi-http-cli
PORT=18098
FILE=$(mktemp -p /dev/shm 2>/dev/null || mktemp)
head -c $((MIB * 1048576)) /dev/zero > "$FILE"
target/release/wasi-http serve guests/wasm/echo.wasm --addr "127.0.0.1:$PORT" \
  --max-request-body 0 --no-access-log 2>/dev/null &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -f "$FILE"' EXIT
wait_port "127.0.0.1:$PORT"
for _ in 1 2 3; do
  curl -s -T "$FILE" -o /dev/null \
    -w "echo $MIB MiB: %{size_download} bytes back in %{time_total}s = %{speed_download} B/s\n" \
    "http://127.0.0.1:$PORT/"
done
echo "server peak RSS: $(peak_rss $PID)"
