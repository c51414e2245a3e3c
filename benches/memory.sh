#!/usr/bin/env bash
# Server memory under connection load: peak RSS of `wasi-http serve` idle, with 1000
# idle keep-alive connections (each has served one request), and with 256 requests
# in flight (echo guests each waiting for the rest of a request body).
# Usage: benches/memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/common.sh
source benches/common.sh
cargo build --release -q -p wasi-http-cli
PORT=18097
$REL/wasi-http serve guests/wasm/echo.wasm --addr "127.0.0.1:$PORT" --no-access-log 2>/dev/null &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
wait_port "127.0.0.1:$PORT"
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2 / 1024}' "/proc/$PID/status"; }
printf '%-40s %12s\n' "state" "server RSS"
printf '%-40s %12s\n' "started, no connection" "$(rss)"
python3 - "$PORT" "$PID" <<'PY'
import socket, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return f"{int(line.split()[1]) / 1024:.1f} MiB"
def connect():
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s
silent = [connect() for _ in range(1000)]
time.sleep(0.5)
print(f"{'1000 open connections, no request yet':<40} {rss():>12}")
for s in silent:
    s.close()
time.sleep(0.5)
def open_with(n, request):
    conns = []
    for _ in range(n):
        s = connect()
        s.sendall(request)
        conns.append(s)
    return conns
idle = open_with(1000, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
for s in idle:
    s.settimeout(5)
    data = b""
    while b"\r\n0\r\n\r\n" not in data:
        data += s.recv(65536)
time.sleep(0.5)
print(f"{'1000 idle keep-alive connections (1)':<40} {rss():>12}")
for s in idle:
    s.close()
time.sleep(0.5)
busy = open_with(256, b"POST / HTTP/1.1\r\nhost: x\r\nx-echo-read-first: 1\r\ncontent-length: 2\r\n\r\n1")
time.sleep(1.0)
print(f"{'256 requests in flight':<40} {rss():>12}")
for s in busy:
    s.sendall(b"2")
for s in busy:
    s.settimeout(5)
    assert s.recv(4096).startswith(b"HTTP/1.1 200"), "in-flight request failed"
    s.close()
PY
printf '%-40s %12s\n' "peak" "$(peak_rss $PID)"
echo "(1) each served one request, all at once: the RSS includes the instance slots"
echo "    those 1000 concurrent requests left resident (EngineConfig::keep_resident_bytes)."
