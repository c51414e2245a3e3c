#!/usr/bin/env bash
# Rebuilds the test guest components in guests/wasm/ from the C sources in
# guests/src/ and the vendored WIT in crates/wasi-http-host/wit/, then rewrites
# guests/wasm/MANIFEST.sha256 (checked by tests/it/guests_fresh.rs).
#
# Usage: guests/build.sh            (from any directory)
#
# Toolchain (installed on demand when missing):
#   apt:   clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32
#   cargo: wasm-tools 1.263.0, wit-bindgen-cli 0.63.0
#   cargo: wasi-preview1-component-adapter-provider =48.0.8 (proxy adapter)
set -euo pipefail

GUESTS="hello echo client fault"

WASM_TOOLS_VERSION=1.263.0
WIT_BINDGEN_VERSION=0.63.0
ADAPTER_CRATE=wasi-preview1-component-adapter-provider
ADAPTER_VERSION=48.0.8
ADAPTER_SHA256=9d2e1b455ad17ac4e00b3ecf255b88aa2ad44c34170ef87395daf448e374fa2e

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
wit_dir="$root/crates/wasi-http-host/wit"
gen="$here/gen"
out="$here/wasm"

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

# ---------------------------------------------------------------- toolchain --

need_apt=()
command -v clang-19 >/dev/null 2>&1 || need_apt+=(clang-19)
command -v wasm-ld-19 >/dev/null 2>&1 || need_apt+=(lld-19)
[ -f /usr/lib/wasm32-wasi/libc.a ] || need_apt+=(wasi-libc)
[ -f /usr/lib/llvm-19/lib/clang/19/lib/wasi/libclang_rt.builtins-wasm32.a ] ||
    need_apt+=(libclang-rt-19-dev-wasm32)
if [ "${#need_apt[@]}" -gt 0 ]; then
    log "installing apt packages: ${need_apt[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update
    $sudo apt-get install -y "${need_apt[@]}"
fi

tool_version_ok() { # <cmd> <version>
    command -v "$1" >/dev/null 2>&1 && "$1" --version 2>/dev/null | grep -qF " $2"
}
need_cargo=()
tool_version_ok wasm-tools "$WASM_TOOLS_VERSION" || need_cargo+=("wasm-tools@$WASM_TOOLS_VERSION")
tool_version_ok wit-bindgen "$WIT_BINDGEN_VERSION" || need_cargo+=("wit-bindgen-cli@$WIT_BINDGEN_VERSION")
if [ "${#need_cargo[@]}" -gt 0 ]; then
    log "installing cargo tools: ${need_cargo[*]}"
    cargo install --locked "${need_cargo[@]}"
fi

mkdir -p "$gen" "$out"

# The proxy adapter ships inside the adapter-provider crate; fetch that crate
# with cargo (into the normal cargo registry cache) and copy the artefact.
adapter="$gen/wasi_snapshot_preview1.proxy.wasm"
if ! [ -f "$adapter" ] || ! echo "$ADAPTER_SHA256  $adapter" | sha256sum -c --status; then
    log "fetching $ADAPTER_CRATE $ADAPTER_VERSION with cargo"
    fetch="$gen/adapter-fetch"
    rm -rf "$fetch"
    mkdir -p "$fetch/src"
    cat >"$fetch/Cargo.toml" <<EOF
[package]
name = "adapter-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
$ADAPTER_CRATE = "=$ADAPTER_VERSION"

[workspace]
EOF
    echo 'fn main() {}' >"$fetch/src/main.rs"
    cargo fetch --manifest-path "$fetch/Cargo.toml" >&2
    manifest="$(cargo metadata --format-version 1 --manifest-path "$fetch/Cargo.toml" |
        grep -o "\"manifest_path\":\"[^\"]*/$ADAPTER_CRATE-$ADAPTER_VERSION/Cargo.toml\"" |
        head -n 1 | sed -e 's/^"manifest_path":"//' -e 's/"$//')"
    [ -n "$manifest" ] || die "could not locate $ADAPTER_CRATE-$ADAPTER_VERSION in the cargo registry"
    cp "$(dirname "$manifest")/artefacts/wasi_snapshot_preview1.proxy.wasm" "$adapter"
    echo "$ADAPTER_SHA256  $adapter" | sha256sum -c --status ||
        die "proxy adapter checksum mismatch (expected $ADAPTER_SHA256)"
    rm -rf "$fetch"
fi

# ---------------------------------------------------------------- bindings --

rm -rf "$gen/bindings"
if ! bindgen_log="$(wit-bindgen c "$wit_dir" --world proxy --features informational-outbound-responses --out-dir "$gen/bindings" 2>&1)"; then
    log "$bindgen_log"
    die "wit-bindgen failed"
fi

# ------------------------------------------------------------------- build --

CC=clang-19
TARGET=wasm32-wasi
CFLAGS=(
    --target="$TARGET"
    -O2
    -std=c11
    -Wall -Wextra -Werror
    -Wno-unused-parameter
    -isystem "$gen/bindings" -I"$here/src"
)
# The generated bindings are not ours; compile them without -Werror.
GEN_CFLAGS=(
    --target="$TARGET"
    -O2
    -I"$gen/bindings"
)
LDFLAGS=(
    --target="$TARGET"
    -mexec-model=reactor
    -Wl,--strip-debug
)

obj="$gen/obj"
rm -rf "$obj"
mkdir -p "$obj"

$CC "${GEN_CFLAGS[@]}" -c "$gen/bindings/proxy.c" -o "$obj/proxy.o"
$CC "${CFLAGS[@]}" -c "$here/src/common.c" -o "$obj/common.o"

for g in $GUESTS; do
    $CC "${CFLAGS[@]}" -c "$here/src/$g.c" -o "$obj/$g.o"
    $CC "${LDFLAGS[@]}" \
        "$obj/$g.o" "$obj/common.o" "$obj/proxy.o" \
        "$gen/bindings/proxy_component_type.o" \
        -o "$obj/$g.core.wasm"
    # Drop any remaining DWARF/producers sections; keeps `name` and
    # `component-type` (needed by `component new`).
    wasm-tools strip "$obj/$g.core.wasm" -o "$obj/$g.core.stripped.wasm"
    wasm-tools component new "$obj/$g.core.stripped.wasm" \
        --adapt "wasi_snapshot_preview1=$adapter" \
        -o "$out/$g.wasm.tmp"
    wasm-tools validate --features component-model "$out/$g.wasm.tmp"
    mv "$out/$g.wasm.tmp" "$out/$g.wasm"
done

# ---------------------------------------------------------------- manifest --

cd "$root"
{
    {
        find guests/src -type f
        echo guests/build.sh
        find crates/wasi-http-host/wit -type f -name '*.wit'
    } | LC_ALL=C sort | while IFS= read -r f; do sha256sum -- "$f"; done
    for g in $GUESTS; do echo "guests/wasm/$g.wasm"; done |
        LC_ALL=C sort | while IFS= read -r f; do sha256sum -- "$f"; done
} >guests/wasm/MANIFEST.sha256.tmp
mv guests/wasm/MANIFEST.sha256.tmp guests/wasm/MANIFEST.sha256

echo "built guests (guests/wasm/):"
for g in $GUESTS; do
    printf '  %-8s %8d bytes\n' "$g" "$(stat -c %s "guests/wasm/$g.wasm")"
done
