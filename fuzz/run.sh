#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) under libFuzzer for SECONDS each and
# prints a table of executions; exits 1 on the first crash, naming the input to
# commit under fuzz/regressions/TARGET/. This machine has stable Rust only:
# cargo-fuzz's instrumentation flags need RUSTC_BOOTSTRAP=1, and the address
# sanitizer (nightly-only) is off (`-s none`): safe Rust needs it least, and
# panics, overflows and assertion failures are what the targets check.
# Usage: fuzz/run.sh [SECONDS] [TARGET...]   (default 20 s, every target)
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${1:-20}
shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.1 --locked
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(ls fuzz_targets | sed 's/\.rs$//')
export RUSTC_BOOTSTRAP=1
# Overflow checks on, as in the dev profile: a wrapped multiplication is a finding.
export RUSTFLAGS="${RUSTFLAGS:-} -Coverflow-checks=on"
cargo fuzz build -s none -O
printf '%-14s %12s %8s %s\n' target executions seconds result
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log=$(mktemp)
  status=0
  cargo fuzz run -s none -O "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$SECONDS_EACH" -artifact_prefix="artifacts/$t/" -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  execs=$(awk '/stat::number_of_executed_units:/ {print $2}' "$log")
  if [ "$status" -ne 0 ]; then
    printf '%-14s %12s %8s %s\n' "$t" "${execs:-?}" "$SECONDS_EACH" CRASH
    grep -E 'panicked|ERROR|Test unit written|artifact' "$log" | head -20 >&2
    echo "commit the input above under fuzz/regressions/$t/ with its fix" >&2
    rm -f "$log"
    exit 1
  fi
  printf '%-14s %12s %8s %s\n' "$t" "$execs" "$SECONDS_EACH" ok
  rm -f "$log"
done
