#!/usr/bin/env bash
# Instructions per request of a whole server process, as a client sees it: native
# hyper (`hello-origin`) against `wasi-http serve` on the C hello guest, fresh and
# with instance reuse, each under callgrind with N1 and then N2 requests from one
# h2load HTTP/1.1 connection (the difference cancels startup), and where they go:
# the per-request instructions split by the crate (or library) of the function that
# executes them, which is the profile behind "C hello reuse against native hyper".
# One connection, so the numbers hold no batching a loaded server gets; wrk rows
# are in compare.sh. Usage: benches/callgrind-server.sh [N1] [N2] (default 500 2500);
# SERVE_ARGS adds flags to the wasi-http servers (e.g. an --otlp-endpoint).
set -euo pipefail
cd "$(dirname "$0")/.."
N1=${1:-500}
N2=${2:-2500}
REL="${CARGO_TARGET_DIR:-target}/release"
for tool in valgrind h2load; do
  command -v $tool >/dev/null || { echo "$tool is missing (apt-get install valgrind nghttp2-client)" >&2; exit 1; }
done
cargo build --release -q --locked -p wasi-http-cli -p test-support --bin wasi-http --bin hello-origin
OUT=$(mktemp -d)
SERVER=
cleanup() { [ -n "$SERVER" ] && kill -9 "$SERVER" 2>/dev/null; rm -rf "$OUT"; }
trap cleanup EXIT
[ -n "${KEEP:-}" ] && { OUT=$KEEP; mkdir -p "$OUT"; trap - EXIT; }
PORT=$(( 20000 + RANDOM % 20000 ))
CACHE="$OUT/cache"

wait_port() {
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server did not listen on $PORT; its log:" >&2; cat "$OUT/log" >&2; exit 1
}

# run LABEL N CMD...: one callgrind profile of CMD serving N requests -> $OUT/LABEL.N
run() {
  local label=$1 n=$2
  shift 2
  valgrind --tool=callgrind --callgrind-out-file="$OUT/$label.$n" "$@" >/dev/null 2>"$OUT/log" &
  SERVER=$!
  wait_port
  h2load --h1 -n "$n" -c 1 "http://127.0.0.1:$PORT/" >"$OUT/h2load" || { cat "$OUT/h2load" >&2; exit 1; }
  grep -q " 0 failed, 0 errored" "$OUT/h2load" || { cat "$OUT/h2load" >&2; exit 1; }
  kill -TERM "$SERVER"
  wait "$SERVER" || true
  SERVER=
}

# The self cost of every function, grouped by where it comes from.
by_crate() { # PROFILE
  callgrind_annotate --auto=no --threshold=100 "$1" 2>/dev/null | awk '
    /^ *[0-9,]+ .*:/ {
      n = $1; gsub(",", "", n)
      line = $0; sub(/^ *[0-9,]+ +(\([^)]*\) +)?/, "", line)
      obj = line; sub(/^.* \[/, "", obj); sub(/\]$/, "", obj)
      fn = line; sub(/^[^:]*:/, "", fn); sub(/ \[.*$/, "", fn)
      sub(/^</, "", fn); sub(/^_</, "", fn)
      g = fn
      if (fn ~ /^(<|_<)?(wasmtime|cranelift|wasmtime_wasi|wasmtime_environ)/) g = "wasmtime"
      else if (fn ~ /wasi_http/) g = "wasi-http (ours)"
      else if (fn ~ /^(<)?hyper/) g = "hyper"
      else if (fn ~ /^(<)?(tokio|mio)/) g = "tokio, mio"
      else if (fn ~ /^(<)?(tracing|tracing_subscriber)/) g = "tracing"
      else if (fn ~ /^(<)?(http|httparse|http_body|bytes)(::|\[)/) g = "http, httparse, bytes"
      else if (obj ~ /wasm|jit/ || fn ~ /^0x/) g = "guest wasm, trampolines"
      else if (fn ~ /^(<)?(core|alloc|std)::/) g = "core, alloc, std"
      else if (obj ~ /libc|ld-linux/) g = "libc"
      else if (fn ~ /^(_?rjem|je_|tikv_jemalloc)/) g = "jemalloc"
      else g = "other"
      sum[g] += n
    }
    END { for (g in sum) print g "\t" sum[g] }' | sort
}

# row LABEL: per-request instructions, in total and by group
row() {
  local label=$1
  by_crate "$OUT/$label.$N1" >"$OUT/a"
  by_crate "$OUT/$label.$N2" >"$OUT/b"
  local t1 t2
  t1=$(awk '/^(summary|totals):/ {print $2; exit}' "$OUT/$label.$N1")
  t2=$(awk '/^(summary|totals):/ {print $2; exit}' "$OUT/$label.$N2")
  printf '%-36s %12d\n' "$label: total" $(( (t2 - t1) / (N2 - N1) ))
  join -t $'\t' -a 2 -e 0 -o 0,1.2,2.2 "$OUT/a" "$OUT/b" |
    awk -F '\t' -v d=$(( N2 - N1 )) '{ printf "  %-34s %12d\n", $1, ($3 - $2) / d }' | sort -k2 -t$'\t'
}

for n in "$N1" "$N2"; do
  run native "$n" "$REL/hello-origin" "127.0.0.1:$PORT"
done
# Each configuration compiles once before it is profiled (under valgrind too: the
# cache key holds the CPU features, and valgrind's differ), so the profiled
# servers load the component from the cache.
for reuse in 128 0; do
  label=reuse; [ "$reuse" = 0 ] && label=fresh
  serve=("$REL/wasi-http" serve guests/wasm/hello.wasm --addr "127.0.0.1:$PORT"
    --cache-dir "$CACHE" --instance-reuse "$reuse" ${SERVE_ARGS:-})
  valgrind --tool=none "${serve[@]}" >/dev/null 2>"$OUT/log" &
  SERVER=$!
  wait_port
  kill -TERM "$SERVER"; wait "$SERVER" || true; SERVER=
  for n in "$N1" "$N2"; do
    run "$label" "$n" "${serve[@]}"
  done
done
printf '%-36s %12s\n' "server (per request)" "instructions"
row native
row reuse
row fresh
