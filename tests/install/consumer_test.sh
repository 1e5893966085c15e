#!/bin/sh
# The install as a user sees it: `cmake --install` into a temporary prefix, then two host programs
# built only from what was installed (one with pkg-config, one with find_package) must run.
#   consumer_test.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1
src=$2
tmp=$(mktemp -d /tmp/fb-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

cmake --install "$build" --prefix "$prefix" >"$tmp/install.log"
fail() { echo "FAIL: $*"; exit 1; }

# What is installed where.
[ -f "$prefix/include/fathom_bridge/fathom_bridge.h" ] || fail "header not installed"
lib=$(ls "$prefix"/lib*/libfathom_bridge.so.0 2>/dev/null | head -n 1)
[ -n "$lib" ] || fail "libfathom_bridge.so.0 not installed"
libdir=$(dirname "$lib")
[ -L "$libdir/libfathom_bridge.so" ] || fail "no libfathom_bridge.so development link"
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libfathom_bridge.so.0" ] || fail "SONAME is '$soname', not libfathom_bridge.so.0"
[ -x "$prefix/bin/fathom-bridge" ] || fail "CLI not installed"
scripts=$prefix/share/fathom-bridge/scripts
for f in mapping.lua reactions.lua README.md; do [ -f "$scripts/$f" ] || fail "share/fathom-bridge/scripts/$f not installed"; done
[ -f "$libdir/pkgconfig/fathom-bridge.pc" ] || fail "pkg-config file not installed"
[ -f "$libdir/cmake/fathom_bridge/fathom_bridgeConfig.cmake" ] || fail "CMake package config not installed"
if ls "$prefix"/include/fathom_bridge | grep -v '^fathom_bridge.h$' >/dev/null; then
  fail "headers beside fathom_bridge.h installed: $(ls "$prefix"/include/fathom_bridge)"
fi
"$prefix/bin/fathom-bridge" --help >/dev/null || fail "installed CLI does not run"
# Every installed shared object exports the C ABI only.
"$src/tests/install/check_exports.sh" "$prefix/include/fathom_bridge/fathom_bridge.h" $(find "$prefix" -name '*.so*' -type f)

# 1. pkg-config
export PKG_CONFIG_PATH="$libdir/pkgconfig"
flags=$(pkg-config --cflags --libs fathom-bridge) || fail "pkg-config does not know fathom-bridge"
pc_libdir=$(pkg-config --variable=libdir fathom-bridge)
mkdir -p "$tmp/pc"
cc -std=c11 -Wall -Wextra -Werror -o "$tmp/pc/consumer" "$src/tests/install/consumer/consumer.c" $flags \
  -Wl,-rpath,"$pc_libdir"
"$tmp/pc/consumer" "$scripts" "$tmp/pc"

# 2. find_package(fathom_bridge CONFIG)
cmake -S "$src/tests/install/consumer" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" >"$tmp/cm.log" || { cat "$tmp/cm.log"; fail "find_package(fathom_bridge) failed"; }
cmake --build "$tmp/cm" >>"$tmp/cm.log" || { cat "$tmp/cm.log"; fail "the find_package consumer did not build"; }
"$tmp/cm/consumer" "$scripts" "$tmp/cm"
echo "ok: installed into a temporary prefix; pkg-config and find_package consumers ran"
