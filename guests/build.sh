#!/usr/bin/env bash
# Rebuilds the test guest components in guests/wasm/ from the C sources in
# guests/src/ and the vendored WIT in crates/wasi-http-host/wit/ (WASI 0.2:
# hello, echo, client, fault), and from guests/p3/ and the vendored WIT in
# crates/wasi-http-host/wit-p3/ (WASI 0.3: p3-hello, p3-echo, p3-client,
# p3-fault, and the middleware p3-mw-header, p3-mw-reject, p3-mw-upper), plus
# two wasi:cli/command guests for `wasi-http run`:
# guests/src/command.c -> command-p2 (WASI 0.2, preview1 command adapter) and
# guests/p3/command.c -> command-p3 (WASI 0.3, no adapter); then rewrites
# guests/wasm/MANIFEST.sha256 (checked by tests/it/guests_fresh.rs).
#
# Usage: guests/build.sh            (from any directory)
#
# Toolchain (installed on demand when missing):
#   apt:   clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32
#   cargo: wasm-tools 1.263.0, wit-bindgen-cli 0.63.0
#   cargo: wasi-preview1-component-adapter-provider =48.0.8 (proxy adapter
#          for the 0.2 guests, command adapter for command-p2; the 0.3
#          guests need no adapter)
set -euo pipefail

GUESTS="hello echo client fault"
# WASI 0.3 guests: guests/p3/<g>.c -> guests/wasm/p3-<g>.wasm
P3_GUESTS="hello echo client fault"
# WASI 0.3 middleware: guests/p3/middleware.c -D MW_<M> -> guests/wasm/p3-mw-<m>.wasm
P3_MIDDLEWARE="header reject upper"
# wasi:cli/command guests: guests/src/command.c -> guests/wasm/command-p2.wasm,
# guests/p3/command.c -> guests/wasm/command-p3.wasm
COMMAND_GUESTS="command-p2 command-p3"

WASM_TOOLS_VERSION=1.263.0
WIT_BINDGEN_VERSION=0.63.0
ADAPTER_CRATE=wasi-preview1-component-adapter-provider
ADAPTER_VERSION=48.0.8
ADAPTER_SHA256=9d2e1b455ad17ac4e00b3ecf255b88aa2ad44c34170ef87395daf448e374fa2e
COMMAND_ADAPTER_SHA256=77602970ea4c7c532985245ac843f1f695fa147eb93229f63103b9c7dea42997

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
wit_dir="$root/crates/wasi-http-host/wit"
wit_p3_dir="$root/crates/wasi-http-host/wit-p3"
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

# The proxy and command adapters ship inside the adapter-provider crate; fetch
# that crate with cargo (into the normal cargo registry cache) and copy the
# artefacts.
adapter="$gen/wasi_snapshot_preview1.proxy.wasm"
command_adapter="$gen/wasi_snapshot_preview1.command.wasm"
adapter_ok() { # <sha256> <file>
    [ -f "$2" ] && echo "$1  $2" | sha256sum -c --status
}
if ! adapter_ok "$ADAPTER_SHA256" "$adapter" ||
    ! adapter_ok "$COMMAND_ADAPTER_SHA256" "$command_adapter"; then
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
    cp "$(dirname "$manifest")/artefacts/wasi_snapshot_preview1.command.wasm" "$command_adapter"
    adapter_ok "$ADAPTER_SHA256" "$adapter" ||
        die "proxy adapter checksum mismatch (expected $ADAPTER_SHA256)"
    adapter_ok "$COMMAND_ADAPTER_SHA256" "$command_adapter" ||
        die "command adapter checksum mismatch (expected $COMMAND_ADAPTER_SHA256)"
    rm -rf "$fetch"
fi

# ---------------------------------------------------------------- bindings --

rm -rf "$gen/bindings"
if ! bindgen_log="$(wit-bindgen c "$wit_dir" --world proxy --features informational-outbound-responses --out-dir "$gen/bindings" 2>&1)"; then
    log "$bindgen_log"
    die "wit-bindgen failed"
fi

# The 0.3 guests' world (guests/p3/world.wit) is the standard
# wasi:http/service world plus wasi:cli/environment; its dependencies come from
# the host's vendored 0.3 WIT.
rm -rf "$gen/bindings-p3"
if ! bindgen_log="$(wit-bindgen c "$wit_p3_dir" "$here/p3/world.wit" \
    --world wasi-http-guests:p3/service --out-dir "$gen/bindings-p3" 2>&1)"; then
    log "$bindgen_log"
    die "wit-bindgen failed (0.3)"
fi

# The command guests' worlds (guests/src/command.wit, guests/p3/command.wit),
# each assembled into one WIT directory with the vendored deps, so that
# `wasm-tools component targets` can check the built components against them.
# command-p2's core module is built against `command-core` (no wasi:cli/run
# export: the command adapter provides it); command-p3's against `command`.
wit_cmd_p2="$gen/wit-command-p2"
wit_cmd_p3="$gen/wit-command-p3"
rm -rf "$wit_cmd_p2" "$wit_cmd_p3" "$gen/bindings-command-p2" "$gen/bindings-command-p3"
mkdir -p "$wit_cmd_p2" "$wit_cmd_p3"
cp "$here/src/command.wit" "$wit_cmd_p2/command.wit"
cp -R "$wit_dir/deps" "$wit_cmd_p2/deps"
cp "$here/p3/command.wit" "$wit_cmd_p3/command.wit"
cp -R "$wit_p3_dir/deps" "$wit_cmd_p3/deps"
if ! bindgen_log="$(wit-bindgen c "$wit_cmd_p2" \
    --world wasi-http-guests:command-p2/command-core --out-dir "$gen/bindings-command-p2" 2>&1)"; then
    log "$bindgen_log"
    die "wit-bindgen failed (command-p2)"
fi
if ! bindgen_log="$(wit-bindgen c "$wit_cmd_p3" \
    --world wasi-http-guests:command-p3/command --out-dir "$gen/bindings-command-p3" 2>&1)"; then
    log "$bindgen_log"
    die "wit-bindgen failed (command-p3)"
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

# -------------------------------------------------------------- build 0.3 --

# Reactor core modules componentized without any adapter: the 0.3 guests use
# no libc function that needs a WASI import (no stdio), only the bindings.
P3_CFLAGS=(
    --target="$TARGET"
    -O2
    -std=c11
    -Wall -Wextra -Werror
    -Wno-unused-parameter
    -isystem "$gen/bindings-p3" -I"$here/p3"
)
P3_GEN_CFLAGS=(
    --target="$TARGET"
    -O2
    -I"$gen/bindings-p3"
)

obj_p3="$gen/obj-p3"
rm -rf "$obj_p3"
mkdir -p "$obj_p3"

$CC "${P3_GEN_CFLAGS[@]}" -c "$gen/bindings-p3/service.c" -o "$obj_p3/service.o"
$CC "${P3_CFLAGS[@]}" -c "$here/p3/common.c" -o "$obj_p3/common.o"

# build_p3 <output name> <source> [compiler flags...]: one 0.3 guest.
build_p3() {
    local name=$1 source=$2
    shift 2
    $CC "${P3_CFLAGS[@]}" "$@" -c "$source" -o "$obj_p3/$name.o"
    $CC "${LDFLAGS[@]}" \
        "$obj_p3/$name.o" "$obj_p3/common.o" "$obj_p3/service.o" \
        "$gen/bindings-p3/service_component_type.o" \
        -o "$obj_p3/$name.core.wasm"
    wasm-tools strip "$obj_p3/$name.core.wasm" -o "$obj_p3/$name.core.stripped.wasm"
    wasm-tools component new "$obj_p3/$name.core.stripped.wasm" -o "$out/$name.wasm.tmp"
    wasm-tools validate --features component-model,cm-async "$out/$name.wasm.tmp"
    mv "$out/$name.wasm.tmp" "$out/$name.wasm"
}

for g in $P3_GUESTS; do
    build_p3 "p3-$g" "$here/p3/$g.c"
done
# The middleware guests: guests/p3/middleware.c built once per behaviour.
for m in $P3_MIDDLEWARE; do
    build_p3 "p3-mw-$m" "$here/p3/middleware.c" "-DMW_$(printf '%s' "$m" | tr '[:lower:]' '[:upper:]')"
done

# ---------------------------------------------------------- build commands --

# command-p2: a wasi-libc command module (crt1 `_start` -> main, libc stdio)
# plus the command-core bindings, componentized with the preview1 command
# adapter (which exports wasi:cli/run and calls `_start`).
obj_cmd="$gen/obj-command"
rm -rf "$obj_cmd"
mkdir -p "$obj_cmd"
b2="$gen/bindings-command-p2"
$CC --target="$TARGET" -O2 -I"$b2" -c "$b2/command_core.c" -o "$obj_cmd/command_core.o"
$CC --target="$TARGET" -O2 -std=c11 -Wall -Wextra -Werror -Wno-unused-parameter \
    -isystem "$b2" -c "$here/src/command.c" -o "$obj_cmd/command-p2.o"
$CC --target="$TARGET" -mexec-model=command -Wl,--strip-debug \
    "$obj_cmd/command-p2.o" "$obj_cmd/command_core.o" "$b2/command_core_component_type.o" \
    -o "$obj_cmd/command-p2.core.wasm"
wasm-tools strip "$obj_cmd/command-p2.core.wasm" -o "$obj_cmd/command-p2.core.stripped.wasm"
wasm-tools component new "$obj_cmd/command-p2.core.stripped.wasm" \
    --adapt "wasi_snapshot_preview1=$command_adapter" \
    -o "$out/command-p2.wasm.tmp"
wasm-tools validate --features component-model "$out/command-p2.wasm.tmp"
wasm-tools component targets "$wit_cmd_p2" --world wasi-http-guests:command-p2/command \
    "$out/command-p2.wasm.tmp"
mv "$out/command-p2.wasm.tmp" "$out/command-p2.wasm"

# command-p3: a reactor core module exporting wasi:cli/run@0.3.0 (callback
# ABI) through the bindings, componentized without any adapter (no libc
# function that needs a WASI import is used).
b3="$gen/bindings-command-p3"
$CC --target="$TARGET" -O2 -I"$b3" -c "$b3/command.c" -o "$obj_cmd/command.o"
$CC --target="$TARGET" -O2 -std=c11 -Wall -Wextra -Werror -Wno-unused-parameter \
    -isystem "$b3" -c "$here/p3/command.c" -o "$obj_cmd/command-p3.o"
$CC "${LDFLAGS[@]}" \
    "$obj_cmd/command-p3.o" "$obj_cmd/command.o" "$b3/command_component_type.o" \
    -o "$obj_cmd/command-p3.core.wasm"
wasm-tools strip "$obj_cmd/command-p3.core.wasm" -o "$obj_cmd/command-p3.core.stripped.wasm"
wasm-tools component new "$obj_cmd/command-p3.core.stripped.wasm" -o "$out/command-p3.wasm.tmp"
wasm-tools validate --features component-model,cm-async "$out/command-p3.wasm.tmp"
wasm-tools component targets "$wit_cmd_p3" --world wasi-http-guests:command-p3/command \
    "$out/command-p3.wasm.tmp"
mv "$out/command-p3.wasm.tmp" "$out/command-p3.wasm"

# ---------------------------------------------------------------- manifest --

cd "$root"
{
    {
        find guests/src guests/p3 -type f
        echo guests/build.sh
        find crates/wasi-http-host/wit crates/wasi-http-host/wit-p3 -type f -name '*.wit'
    } | LC_ALL=C sort | while IFS= read -r f; do sha256sum -- "$f"; done
    {
        for g in $GUESTS; do echo "guests/wasm/$g.wasm"; done
        for g in $P3_GUESTS; do echo "guests/wasm/p3-$g.wasm"; done
        for m in $P3_MIDDLEWARE; do echo "guests/wasm/p3-mw-$m.wasm"; done
        for g in $COMMAND_GUESTS; do echo "guests/wasm/$g.wasm"; done
    } | LC_ALL=C sort | while IFS= read -r f; do sha256sum -- "$f"; done
} >guests/wasm/MANIFEST.sha256.tmp
mv guests/wasm/MANIFEST.sha256.tmp guests/wasm/MANIFEST.sha256

echo "built guests (guests/wasm/):"
for g in $GUESTS; do
    printf '  %-10s %8d bytes\n' "$g" "$(stat -c %s "guests/wasm/$g.wasm")"
done
for g in $P3_GUESTS; do
    printf '  %-10s %8d bytes\n' "p3-$g" "$(stat -c %s "guests/wasm/p3-$g.wasm")"
done
for m in $P3_MIDDLEWARE; do
    printf '  %-10s %8d bytes\n' "p3-mw-$m" "$(stat -c %s "guests/wasm/p3-mw-$m.wasm")"
done
for g in $COMMAND_GUESTS; do
    printf '  %-10s %8d bytes\n' "$g" "$(stat -c %s "guests/wasm/$g.wasm")"
done
