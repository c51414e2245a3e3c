#!/usr/bin/env bash
# Interop suite: guests built with the toolchains people use, served unmodified by
# `wasi-http serve` (release build) and checked with real HTTP requests.
#
#   py  componentize-py 0.25.1 (PyPI)              interop/py/{hello,echo,fetch}/app.py
#   js  jco 1.35.0 / ComponentizeJS 0.22.0 (npm)   interop/js/{hello,echo,fetch}/app.js
#   c   wit-bindgen C + clang (guests/, prebuilt)  guests/wasm/{hello,echo,client}.wasm
#   py3 componentize-py 0.25.1, WASI 0.3           interop/py3/{hello,echo,fetch,sleepy}/app.py
#
# py, js and c are WASI 0.2 guests (the wasi:http/proxy world, exports
# wasi:http/incoming-handler@0.2.x). py3 are WASI 0.3 guests: the wasi:http/service@0.3.0
# world of crates/wasi-http-host/wit-p3 (exports wasi:http/handler@0.3.0: an
# `async def handle(self, request) -> Response`, bodies as native stream<u8> and
# future, several requests at once in one instance), served by the same binary, which
# tells 0.3 from the exports. `sleepy` checks that overlapping requests are served
# concurrently by one instance. JavaScript has no 0.3 counterpart: jco 1.35.0 /
# ComponentizeJS cannot emit WASI 0.3 components yet.
#
# Toolchains, built guests and the server's compiled-component cache live in
# $WASI_HTTP_INTEROP_CACHE (default ~/.cache/wasi-http-interop), keyed by source and
# tool version, so a second run only serves and checks. Ends with `N passed, N failed`
# and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${WASI_HTTP_INTEROP_CACHE:-$HOME/.cache/wasi-http-interop}
PY_VERSION=0.25.1
JCO_VERSION=1.35.0
SHIM_VERSION=0.26.0 # 0.26.1 breaks `jco componentize` ("failed to get path metadata")
mkdir -p "$CACHE/build"
# `--built` mode prints only the guest's path on stdout: everything else (toolchain
# installs, build logs) goes to stderr.
if [ "${1:-}" = --built ]; then exec 3>&1 1>&2; fi
started=$(date +%s)
log() { echo "[$(( $(date +%s) - started ))s] $*"; }

# --- toolchains -------------------------------------------------------------------
if [ "$("$CACHE/py/bin/componentize-py" --version 2>/dev/null | awk '{print $2}')" != "$PY_VERSION" ]; then
  log "installing componentize-py $PY_VERSION"
  python3 -m venv "$CACHE/py" && "$CACHE/py/bin/pip" install -q "componentize-py==$PY_VERSION" || exit 1
fi
if [ "$(node -p "require('$CACHE/js/node_modules/@bytecodealliance/jco/package.json').version" 2>/dev/null)" != "$JCO_VERSION" ]; then
  log "installing jco $JCO_VERSION"
  mkdir -p "$CACHE/js" && (cd "$CACHE/js" && [ -f package.json ] || npm init -y >/dev/null) &&
    npm install --prefix "$CACHE/js" --no-audit --no-fund \
      "@bytecodealliance/jco@$JCO_VERSION" "@bytecodealliance/preview2-shim@$SHIM_VERSION" >/dev/null || exit 1
fi
# `interop/run.sh --built KIND NAME` prints the path of one built guest (building it
# if needed) and exits: the benchmarks use the same guests and cache.
if [ "${1:-}" != --built ]; then
  log "building wasi-http (release)"
  cargo build --release -q -p wasi-http-cli -p test-support --bin wasi-http --bin hello-origin || exit 1
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SERVE=$TARGET/release/wasi-http

# --- guests -----------------------------------------------------------------------
JS_WIT=$CACHE/wit-0.2.10
python3 interop/wit_0_2_10.py crates/wasi-http-host/wit/deps "$JS_WIT"
# The standard 0.3 WIT the host is built against; the world is the standard one.
P3_WIT=$ROOT/crates/wasi-http-host/wit-p3
P3_WORLD=wasi:http/service@0.3.0

# built KIND NAME: path of the guest, building it if its inputs changed.
built() {
  local kind=$1 name=$2 src key out
  case $kind in
    c) echo "$ROOT/guests/wasm/$name.wasm"; return ;;
    py) src=interop/py/$name/app.py ;;
    js) src=interop/js/$name/app.js ;;
    py3) src=interop/py3/$name/app.py ;;
    *) echo "unknown guest kind \`$kind\` (expected c, py, js or py3)" >&2; return 1 ;;
  esac
  [ -f "$src" ] || { echo "no guest source $src" >&2; return 1; }
  if [ "$kind" = py3 ]; then
    key=$( (cat "$src" "$P3_WIT"/world.wit "$P3_WIT"/deps/*.wit; echo "$P3_WORLD $PY_VERSION") |
      sha256sum | cut -c1-16)
  else
    key=$(cat "$src" interop/wit/world.wit interop/wit_0_2_10.py crates/wasi-http-host/wit/deps/*.wit |
      sha256sum | cut -c1-16)
  fi
  out=$CACHE/build/$kind-$name-$key.wasm
  if [ ! -f "$out" ]; then
    local t0
    t0=$(date +%s)
    case $kind in
      py) (cd "interop/py/$name" && "$CACHE/py/bin/componentize-py" -d "$ROOT/interop/wit" \
            -w interop:guests/proxy componentize app -o "$out.tmp") >/dev/null 2>"$CACHE/build/$kind-$name.log" ;;
      js) "$CACHE/js/node_modules/.bin/jco" componentize "$src" -w "$JS_WIT" -n proxy \
            -o "$out.tmp" >"$CACHE/build/$kind-$name.log" 2>&1 ;;
      py3) (cd "interop/py3/$name" && "$CACHE/py/bin/componentize-py" -d "$P3_WIT" \
            -w "$P3_WORLD" componentize app -o "$out.tmp") >/dev/null 2>"$CACHE/build/$kind-$name.log" ;;
    esac || { echo "build of $kind/$name failed: $(tail -3 "$CACHE/build/$kind-$name.log")" >&2; return 1; }
    mv "$out.tmp" "$out"
    log >&2 "built $kind/$name in $(( $(date +%s) - t0 ))s ($(( $(stat -c %s "$out") / 1048576 )) MiB)"
  fi
  echo "$out"
}
if [ "${1:-}" = --built ]; then
  [ $# -eq 3 ] || { echo "usage: interop/run.sh --built c|py|js|py3 NAME" >&2; exit 2; }
  built "$2" "$3" >&3
  exit
fi

# --- checks -----------------------------------------------------------------------
PASSED=0
FAILED=0
PORT=18180
ORIGIN_PORT=18179
"$TARGET/release/hello-origin" "127.0.0.1:$ORIGIN_PORT" >/dev/null 2>&1 &
ORIGIN=$!
SERVER=
trap 'kill $ORIGIN ${SERVER:-} 2>/dev/null' EXIT
pass() { PASSED=$((PASSED + 1)); echo "PASS $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $1: $2"; }

# serve WASM [FLAGS...]: starts wasi-http serve, waits until it answers.
serve() {
  local wasm=$1
  shift
  SERVER_LOG=$(mktemp)
  "$SERVE" serve "$wasm" --addr "127.0.0.1:$PORT" --allow-network 127.0.0.1/32 \
    --cache-dir "$CACHE/components" "$@" 2>"$SERVER_LOG" &
  SERVER=$!
  # Polled every 5 ms (up to 2 minutes): the cached-start time below includes this.
  for _ in $(seq 1 24000); do
    grep -q "Serving HTTP" "$SERVER_LOG" && return 0
    kill -0 $SERVER 2>/dev/null || break
    sleep 0.005
  done
  echo "server did not start: $(tail -5 "$SERVER_LOG")" >&2
  return 1
}
stop() { kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; SERVER=; rm -f "$SERVER_LOG"; }
URL="http://127.0.0.1:$PORT"

# expect NAME CURL_ARGS... -- STATUS BODY_REGEX [HEADER_REGEX]
expect() {
  local name=$1
  shift
  local args=()
  while [ "$1" != -- ]; do args+=("$1"); shift; done
  shift
  local status=$1 body_re=$2 header_re=${3:-}
  local out headers code
  headers=$(mktemp)
  out=$(curl -s -D "$headers" --max-time 20 "${args[@]}")
  code=$(awk 'NR==1 {print $2}' "$headers")
  if [ "$code" != "$status" ]; then
    fail "$name" "status $code, want $status (body: ${out:0:120})"
  elif ! grep -Eq "$body_re" <<<"$out"; then
    fail "$name" "body ${out:0:120} does not match /$body_re/"
  elif [ -n "$header_re" ] && ! grep -Eiq "$header_re" "$headers"; then
    fail "$name" "no header matching /$header_re/"
  else
    pass "$name"
  fi
  rm -f "$headers"
}

BIG=$(mktemp)
head -c $((5 * 1048576)) /dev/urandom >"$BIG"
BIG_SUM=$(sha256sum <"$BIG" | cut -d' ' -f1)
LEN=$(mktemp)
head -c 102400 /dev/zero >"$LEN"

for kind in c py js; do
  case $kind in
    c) hello=hello echo=echo fetch=client echo_h=x-echo-h-x-test length_args=(-H "x-echo-read-first: 1" --data-binary "@$LEN" "$URL/") ;;
    *) hello=hello echo=echo fetch=fetch echo_h=x-echo-x-test length_args=(--data-binary "@$LEN" "$URL/length") ;;
  esac
  log "$kind guests"
  if wasm=$(built "$kind" "$hello") && serve "$wasm"; then
    t0=$(date +%s%N)
    expect "$kind/hello" "$URL/" -- 200 "Hello"
    stop
    # A restart loads the compiled component from the cache.
    t0=$(date +%s%N)
    serve "$wasm" && until curl -sf "$URL/" >/dev/null; do sleep 0.005; done
    log "$kind/hello: first response $(( ($(date +%s%N) - t0) / 1000000 )) ms after a cached start"
    if grep -q "(from the cache)" "$SERVER_LOG"; then pass "$kind/hello restart from the cache"
    else fail "$kind/hello restart from the cache" "$(grep 'Component ready' "$SERVER_LOG")"; fi
    stop
    # Instance reuse: a guest that breaks when reused falls back to fresh instances.
    serve "$wasm" --instance-reuse 10
    for _ in 1 2 3; do curl -s -o /dev/null "$URL/"; done
    expect "$kind/hello with --instance-reuse" "$URL/" -- 200 "Hello"
    if grep -q "not safe to reuse" "$SERVER_LOG"; then log "$kind/hello: not safe to reuse, served fresh"; fi
    stop
  else
    fail "$kind/hello" "could not build or serve"
  fi
  if wasm=$(built "$kind" "$echo") && serve "$wasm"; then
    expect "$kind/echo headers and body" -H "x-test: abc" --data-binary "payload" "$URL/p?q=1" -- 200 "^payload$" "^$echo_h: abc"
    sum=$(curl -s --max-time 30 --data-binary "@$BIG" -H "content-type: application/octet-stream" "$URL/big" | sha256sum | cut -d' ' -f1)
    if [ "$sum" = "$BIG_SUM" ]; then pass "$kind/echo 5 MiB streamed"; else fail "$kind/echo 5 MiB streamed" "body differs"; fi
    expect "$kind/echo body read in full (async)" "${length_args[@]}" -- 200 "^102400$"
    stop
  else
    fail "$kind/echo" "could not build or serve"
  fi
  if wasm=$(built "$kind" "$fetch") && serve "$wasm"; then
    expect "$kind/outbound fetch" -H "x-url: http://127.0.0.1:$ORIGIN_PORT/" "$URL/" -- 200 "hello"
    stop
  else
    fail "$kind/fetch" "could not build or serve"
  fi
done

# --- py3: WASI 0.3 guests -----------------------------------------------------------
log "py3 guests"
# loaded_as_p3 NAME: the server log says it loaded a 0.3 service.
loaded_as_p3() {
  if grep -q "WASI 0.3 HTTP service (wasi:http/handler@0.3.0)" "$SERVER_LOG"; then pass "$1 loaded as WASI 0.3"
  else fail "$1 loaded as WASI 0.3" "$(grep Loading "$SERVER_LOG")"; fi
}
if wasm=$(built py3 hello) && serve "$wasm"; then
  loaded_as_p3 py3/hello
  expect "py3/hello" "$URL/" -- 200 "^Hello, wasi:http!$" "^content-type: text/plain"
  stop
  t0=$(date +%s%N)
  serve "$wasm" && until curl -sf "$URL/" >/dev/null; do sleep 0.005; done
  log "py3/hello: first response $(( ($(date +%s%N) - t0) / 1000000 )) ms after a cached start"
  if grep -q "(from the cache)" "$SERVER_LOG"; then pass "py3/hello restart from the cache"
  else fail "py3/hello restart from the cache" "$(grep 'Component ready' "$SERVER_LOG")"; fi
  for _ in 1 2 3; do curl -s -o /dev/null "$URL/"; done
  expect "py3/hello reused instance" "$URL/" -- 200 "^Hello, wasi:http!$"
  stop
else
  fail "py3/hello" "could not build or serve"
fi
if wasm=$(built py3 echo) && serve "$wasm"; then
  loaded_as_p3 py3/echo
  expect "py3/echo headers and body" -H "x-test: abc" --data-binary "payload" "$URL/p?q=1" -- 200 "^payload$" "^x-echo-x-test: abc"
  expect "py3/echo method and path" -X PUT --data-binary "x" "$URL/p?q=1" -- 200 "^x$" "^x-echo-method: PUT"
  expect "py3/echo path header" --data-binary "x" "$URL/p?q=1" -- 200 "^x$" "^x-echo-path: /p\?q=1"
  sum=$(curl -s --max-time 30 --data-binary "@$BIG" -H "content-type: application/octet-stream" "$URL/big" | sha256sum | cut -d' ' -f1)
  if [ "$sum" = "$BIG_SUM" ]; then pass "py3/echo 5 MiB streamed"; else fail "py3/echo 5 MiB streamed" "body differs"; fi
  expect "py3/echo body read in full (async)" --data-binary "@$LEN" "$URL/length" -- 200 "^102400$"
  stop
else
  fail "py3/echo" "could not build or serve"
fi
if wasm=$(built py3 fetch) && serve "$wasm"; then
  loaded_as_p3 py3/fetch
  expect "py3/outbound fetch" -H "x-url: http://127.0.0.1:$ORIGIN_PORT/" "$URL/" -- 200 "hello" "^x-status: 200"
  # Nothing listens on port 9: the host's error-code comes back as a 502.
  expect "py3/outbound fetch error" -H "x-url: http://127.0.0.1:9/" "$URL/" -- 502 "fetch failed"
  stop
else
  fail "py3/fetch" "could not build or serve"
fi
if wasm=$(built py3 sleepy) && serve "$wasm"; then
  loaded_as_p3 py3/sleepy
  expect "py3/sleepy single" -H "x-delay-ms: 10" "$URL/" -- 200 "^[0-9]+ 1$"
  OUT=$(mktemp -d)
  pids=()
  t0=$(date +%s%N)
  for i in 1 2 3 4 5 6 7 8; do
    curl -s --max-time 20 -H "x-delay-ms: 300" -o "$OUT/$i" "$URL/" &
    pids+=($!)
  done
  wait "${pids[@]}"
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  answers=$(cat "$OUT"/* | tr '\n' ' ')
  log "py3/sleepy: 8 requests of 300 ms in $ms ms: $answers"
  # Some instance id with an in-flight count >= 2 answered at least twice.
  if cat "$OUT"/* | awk '$2 >= 2 {n[$1]++} END {for (id in n) if (n[id] >= 2) ok = 1; exit !ok}'; then
    pass "py3/sleepy requests overlap in one instance"
  else
    fail "py3/sleepy requests overlap in one instance" "answers: $answers"
  fi
  if [ "$(cat "$OUT"/* | grep -Ec '^[0-9]+ [0-9]+$')" = 8 ] && [ "$ms" -lt 1500 ]; then
    pass "py3/sleepy 8 x 300 ms concurrently"
  else
    fail "py3/sleepy 8 x 300 ms concurrently" "$ms ms (want < 1500), answers: $answers"
  fi
  rm -rf "$OUT"
  stop
else
  fail "py3/sleepy" "could not build or serve"
fi

rm -f "$BIG" "$LEN"
log "done"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
