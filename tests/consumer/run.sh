#!/usr/bin/env bash
# usage: run.sh BUILD_DIR CONSUMER_SRC_DIR CC CMAKE
# Installs BUILD_DIR into a temporary prefix, then builds and runs consumers.
set -euo pipefail
build=$1 src=$2 cc=$3 cmake=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
# Nothing below may find libmsvc by the environment: installed programs must
# find it on their own, and consumers are linked with an rpath.
unset LD_LIBRARY_PATH

"$cmake" --install "$build" --prefix "$prefix" >/dev/null
libdir=$(dirname "$(find "$prefix" -name libmsvc.pc -print -quit)")/..
libdir=$(cd "$libdir" && pwd)
test -f "$libdir/libmsvc.a"
test -L "$libdir/libmsvc.so.0"
export PKG_CONFIG_PATH=$libdir/pkgconfig

# The README's first service, exactly as printed there.
first=$work/first_service.c
awk '/^A first service:/ { want = 1; next }
     want && /^```c$/ { on = 1; next }
     on && /^```$/ { exit }
     on { print }' "$src/../../README.md" >"$first"
grep -q msvc_service_run "$first"
# And the one of docs/getting-started.md.
greeter=$work/greeter.c
awk '/^Save this as `greeter.c`:/ { want = 1; next }
     want && /^```c$/ { on = 1; next }
     on && /^```$/ { exit }
     on { print }' "$src/../../docs/getting-started.md" >"$greeter"
grep -q msvc_service_run "$greeter"

echo "== installed programs run without LD_LIBRARY_PATH"
test -x "$prefix/bin/msvc-jwt"
for prog in "$prefix"/bin/*; do
  # shellcheck disable=SC2016 # a literal $ORIGIN
  if ! readelf -d "$prog" | grep -q 'R.*PATH.*\$ORIGIN'; then
    echo "$prog has no \$ORIGIN-relative RUNPATH" >&2
    exit 1
  fi
  if ldd "$prog" | grep -q 'libmsvc.*not found'; then
    echo "$prog does not find libmsvc.so:" >&2
    ldd "$prog" >&2
    exit 1
  fi
done
rc=0
"$prefix/bin/msvc-jwt" --help >/dev/null 2>"$work/err" || rc=$?
if [ "$rc" -eq 127 ] || grep -q 'error while loading shared libraries' "$work/err"; then
  cat "$work/err" >&2
  exit 1
fi

echo "== pkg-config, shared"
# shellcheck disable=SC2046
"$cc" -Wall -Werror -o "$work/pc_shared" "$src/main.c" \
  $(pkg-config --cflags --libs libmsvc) -Wl,-rpath,"$libdir"
"$work/pc_shared"

echo "== pkg-config, strict C11: the first services of the README and the guide"
# shellcheck disable=SC2046
"$cc" -std=c11 -pedantic-errors -Wall -Wextra -Werror -o "$work/pc_first" "$first" \
  $(pkg-config --cflags --libs libmsvc) -Wl,-rpath,"$libdir"
# shellcheck disable=SC2046
"$cc" -std=c11 -pedantic-errors -Wall -Wextra -Werror -o "$work/pc_greeter" "$greeter" \
  $(pkg-config --cflags --libs libmsvc) -Wl,-rpath,"$libdir"
# shellcheck disable=SC2046
"$cc" -std=c11 -pedantic-errors -Wall -Werror -o "$work/pc_c11" "$src/main.c" \
  $(pkg-config --cflags --libs libmsvc) -Wl,-rpath,"$libdir"
"$work/pc_c11"

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

echo "== find_package(libmsvc), strict C11 first service included"
"$cmake" -S "$src/cmake" -B "$work/cm" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_COMPILER="$cc" -DFIRST_SERVICE="$first" >/dev/null
"$cmake" --build "$work/cm" >/dev/null
"$work/cm/consumer"
"$work/cm/consumer_static"
test -x "$work/cm/first_service"
echo "consumers built and ran"
