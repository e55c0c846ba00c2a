#!/usr/bin/env bash
# The one entry point for building, testing and running libmsvc.
#
#   ./run.sh test        install what is needed, build, run every test suite
#   ./run.sh demo        install, build and run the demo system (see README)
#   ./run.sh sanitize    the test suite under AddressSanitizer + UBSan
#   ./run.sh docs        the HTML API documentation (zero warnings allowed)
#   ./run.sh fuzz [S]    every fuzz target for S seconds each (default 60)
#   ./run.sh bench       benchmarks beside their peers (QUICK=1: a short run)
#   ./run.sh soak        the demo system under steady load (SOAK_S=300 seconds)
#   ./run.sh install [PREFIX]   build and install (default /usr/local)
#   ./run.sh ci          what CI runs: test, sanitize, docs, fuzz, quick bench
#
# Works as root on a bare Debian 12 (it installs its own packages with apt);
# as another user it asks sudo for the installs. Build trees go to build*/.
set -euo pipefail
cd "$(dirname "$0")"
top=$PWD
jobs=$(nproc 2>/dev/null || echo 2)

say() { printf '\n==> %s\n' "$*"; }

deps() { bash scripts/install-deps.sh "$@"; }

# configure DIR [cmake args...]: configure a build tree once, reconfigure
# when called with other arguments.
configure() {
  local dir=$1
  shift
  cmake -S "$top" -B "$dir" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
}

build() {
  cmake --build "$1" -j "$jobs" -- --no-print-directory >/dev/null ||
    cmake --build "$1" -j 1 -- --no-print-directory
}

cmd_test() {
  say "installing dependencies"
  deps test
  say "building (build/)"
  configure build -DLIBMSVC_BUILD_TESTS=ON -DLIBMSVC_BUILD_EXAMPLES=ON
  build build
  say "running the test suites"
  (cd build && ctest --output-on-failure -j "$jobs" "$@")
}

cmd_sanitize() {
  deps test
  say "building with AddressSanitizer + UBSan (build-asan/)"
  BUILD_TYPE=Debug configure build-asan -DLIBMSVC_SANITIZE=ON -DLIBMSVC_BUILD_TESTS=ON \
    -DLIBMSVC_BUILD_EXAMPLES=ON
  build build-asan
  say "running the test suites under the sanitizers"
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$top/tests/lsan.supp:print_suppressions=0}
  (cd build-asan && ctest --output-on-failure -j "$jobs" "$@")
}

cmd_docs() {
  deps docs build
  say "building the API documentation (build-docs/docs/html)"
  configure build-docs -DLIBMSVC_BUILD_DOCS=ON -DLIBMSVC_BUILD_TESTS=OFF \
    -DLIBMSVC_BUILD_EXAMPLES=OFF
  cmake --build build-docs --target docs
  echo "open build-docs/docs/html/index.html"
}

cmd_fuzz() {
  local secs=${1:-60} f name target corpus
  deps build fuzz
  say "building the fuzz targets with clang (build-fuzz/)"
  CC=clang configure build-fuzz -DLIBMSVC_BUILD_FUZZERS=ON \
    -DLIBMSVC_BUILD_TESTS=OFF -DLIBMSVC_BUILD_EXAMPLES=OFF
  build build-fuzz
  for f in fuzz/fuzz_*.c; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .c)
    target=${name#fuzz_}
    [ -x "build-fuzz/fuzz/$name" ] || continue
    # Fuzz into a scratch copy so the committed seed corpus stays small.
    corpus=build-fuzz/corpus/$target
    mkdir -p "$corpus"
    cp -n fuzz/corpus/"$target"/* "$corpus"/ 2>/dev/null || true
    say "fuzzing $target for ${secs}s"
    (cd build-fuzz && "./fuzz/$name" -max_total_time="$secs" -print_final_stats=1 \
       -artifact_prefix="$top/build-fuzz/$target-" "corpus/$target" 2>&1 | tail -n 12)
  done
}

# The optimised build the benchmarks and the soak test run (build-bench/).
build_bench() {
  deps build bench demo
  say "building optimised benchmarks (build-bench/)"
  BUILD_TYPE=Release configure build-bench -DLIBMSVC_BUILD_BENCH=ON \
    -DLIBMSVC_BUILD_TESTS=OFF -DLIBMSVC_BUILD_EXAMPLES=ON -DLIBMSVC_SANITIZE=OFF \
    -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG"
  build build-bench
}

cmd_bench() {
  local t0=$SECONDS
  build_bench
  mkdir -p build/bench
  export MSVC_BENCH_RESULTS=$top/build/bench/results.jsonl
  : >"$MSVC_BENCH_RESULTS"
  [ "${QUICK:-0}" = 0 ] || export MSVC_BENCH_QUICK=1
  local b
  for b in build-bench/bench/bench_* build-bench/bench/*/bench_*; do
    [ -x "$b" ] && [ -f "$b" ] || continue
    say "$(basename "$b")"
    "$b"
  done
  for b in bench/*.sh; do
    [ -e "$b" ] || continue
    [ "$b" != bench/lib.sh ] || continue # helpers the others source
    say "$(basename "$b")"
    BUILD_DIR=$top/build-bench bash "$b"
  done
  awk -f bench/report.awk "$MSVC_BENCH_RESULTS" >build/bench/results.md
  say "results ($(wc -l <"$MSVC_BENCH_RESULTS") figures in build/bench/results.jsonl and results.md, $((SECONDS - t0)) s)"
  cat build/bench/results.md
}

cmd_soak() {
  build_bench
  mkdir -p build/bench
  say "soak test for ${SOAK_S:-300} s (build/bench/soak.jsonl)"
  BUILD_DIR=$top/build-bench SOAK_OUT=$top/build/bench/soak.jsonl bash bench/soak/soak.sh
}

cmd_demo() {
  # Usage needs nothing installed or built.
  for arg in "$@"; do
    case $arg in -h | --help) exec examples/demo.sh --help ;; esac
  done
  deps demo
  say "building the library and the example services (build-demo/)"
  configure build-demo -DLIBMSVC_BUILD_TESTS=OFF -DLIBMSVC_BUILD_EXAMPLES=ON
  build build-demo
  BUILD_DIR=build-demo exec examples/demo.sh "$@"
}

cmd_install() {
  local prefix=${1:-/usr/local}
  deps build
  configure build-release -DLIBMSVC_BUILD_TESTS=OFF -DLIBMSVC_BUILD_EXAMPLES=ON \
    -DCMAKE_INSTALL_PREFIX="$prefix"
  build build-release
  cmake --install build-release
}

cmd_ci() {
  local t0=$SECONDS
  # What CI runs is as strict as CI: a test that would be skipped for want
  # of a dependency CI can install (jose from npm) fails instead.
  export CI=${CI:-true}
  cmd_test
  cmd_sanitize
  cmd_docs
  cmd_fuzz "${FUZZ_SECONDS:-20}"
  QUICK=1 cmd_bench
  say "CI finished in $((SECONDS - t0)) s"
}

case ${1:-} in
test | sanitize | docs | fuzz | bench | soak | demo | install | ci)
  c=$1
  shift
  "cmd_$c" "$@"
  ;;
*)
  sed -n '2,14s/^# \{0,1\}//p' "$0"
  exit 2
  ;;
esac
