# Shared by the load benchmarks (sourced, not run).

command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y -qq wrk >/dev/null; }

# wait_port HOST:PORT: until something listens there (60 s at most).
wait_port() {
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server on $1 did not start" >&2
  return 1
}

# peak_rss PID: the process's peak resident set, e.g. 24MiB.
peak_rss() {
  awk '/VmHWM/ {printf "%.0fMiB", $2 / 1024}' "/proc/$1/status"
}

# has_wasmtime48: whether `wasmtime serve` 48 is there to compare against.
has_wasmtime48() {
  command -v wasmtime >/dev/null && wasmtime --version | grep -q '^wasmtime 48\.'
}

# Where cargo puts release binaries (honours CARGO_TARGET_DIR).
REL="${CARGO_TARGET_DIR:-target}/release"

# post_script FILE: a wrk script that POSTs 1 KiB bodies (the echo rows).
post_script() {
  cat > "$1" <<'EOF'
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["content-type"] = "application/octet-stream"
EOF
}

# awk functions for the tables: ms(v) reads wrk's latencies (850.00us, 1.23ms,
# 1.05s) as milliseconds; median(list) of a space-separated list.
AWK_STATS='
  function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v + 0 }
  function median(list,    a, i, j, v, k) {
    k = split(list, a, " ")
    for (i = 2; i <= k; i++) { v = a[i] + 0; j = i - 1; while (j > 0 && a[j] + 0 > v) { a[j + 1] = a[j]; j-- } a[j + 1] = v }
    return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }'
