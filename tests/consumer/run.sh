#!/usr/bin/env bash
# usage: run.sh BUILD_DIR CONSUMER_SRC_DIR CC CMAKE
# Installs BUILD_DIR into a temporary prefix, then builds and runs consumers.
set -euo pipefail
build=$1 src=$2 cc=$3 cmake=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

"$cmake" --install "$build" --prefix "$prefix" >/dev/null
libdir=$(dirname "$(find "$prefix" -name libmsvc.pc -print -quit)")/..
libdir=$(cd "$libdir" && pwd)
test -f "$libdir/libmsvc.a"
test -L "$libdir/libmsvc.so.0"
export PKG_CONFIG_PATH=$libdir/pkgconfig

echo "== pkg-config, shared"
# shellcheck disable=SC2046
"$cc" -Wall -Werror -o "$work/pc_shared" "$src/main.c" \
  $(pkg-config --cflags --libs libmsvc) -Wl,-rpath,"$libdir"
"$work/pc_shared"

echo "== pkg-config, static"
# shellcheck disable=SC2046
"$cc" -Wall -Werror -o "$work/pc_static" "$src/main.c" \
  $(pkg-config --cflags libmsvc) "$libdir/libmsvc.a" \
  $(pkg-config --static --libs libmsvc | sed 's/-lmsvc\b//')
"$work/pc_static"
if ldd "$work/pc_static" | grep -q libmsvc; then
  echo "static consumer links libmsvc.so" >&2
  exit 1
fi

echo "== find_package(libmsvc)"
"$cmake" -S "$src/cmake" -B "$work/cm" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_COMPILER="$cc" >/dev/null
"$cmake" --build "$work/cm" >/dev/null
"$work/cm/consumer"
"$work/cm/consumer_static"
echo "consumers built and ran"
