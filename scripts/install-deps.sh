#!/usr/bin/env bash
# Installs the Debian packages libmsvc needs, for one purpose or all of them:
#
#   scripts/install-deps.sh [build|test|demo|bench|docs|fuzz|all]...
#
# Idempotent: packages already present are skipped, and `apt-get update` runs
# at most once, only when something is missing. Must run as root (or through
# sudo) on Debian 12; it needs nothing but bash and apt to start with.
set -euo pipefail

pkgs_build=(gcc make cmake pkg-config libc6-dev ca-certificates
            libuv1-dev node-llhttp libcjson-dev libmbedtls-dev libc-ares-dev
            libnats-dev libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler
            zlib1g-dev)
pkgs_test=(libcriterion-dev clang libclang-rt-14-dev doxygen curl openssl
           procps iproute2 etcd-server prometheus nodejs npm libsqlite3-dev
           python3 python3-yaml dnsmasq-base nats-server nghttp2-client
           python3-grpcio python3-grpc-tools chromium python3-prometheus-client)
pkgs_demo=(libsqlite3-dev curl openssl procps etcd-server nats-server)
pkgs_bench=(wrk nginx haproxy libjwt-dev util-linux procps python3 curl
            nats-server nghttp2-client)
pkgs_docs=(doxygen)
pkgs_fuzz=(clang libclang-rt-14-dev)

want=()
[ $# -gt 0 ] || set -- build
for group in "$@"; do
  case $group in
  build) want+=("${pkgs_build[@]}") ;;
  test) want+=("${pkgs_build[@]}" "${pkgs_test[@]}") ;;
  demo) want+=("${pkgs_build[@]}" "${pkgs_demo[@]}") ;;
  bench) want+=("${pkgs_build[@]}" "${pkgs_bench[@]}") ;;
  docs) want+=("${pkgs_docs[@]}") ;;
  fuzz) want+=("${pkgs_fuzz[@]}") ;;
  all) want+=("${pkgs_build[@]}" "${pkgs_test[@]}" "${pkgs_demo[@]}"
              "${pkgs_bench[@]}" "${pkgs_docs[@]}" "${pkgs_fuzz[@]}") ;;
  *) echo "install-deps: unknown group '$group' (build, test, demo, bench, docs, fuzz, all)" >&2
     exit 2 ;;
  esac
done

# A package counts as present when dpkg has it, or, for the tools below,
# when the command is already there from elsewhere (Node.js distributions
# bundle npm, which then conflicts with Debian's npm package).
installed() {
  case $1 in
  nodejs) command -v node >/dev/null && return 0 ;;
  npm) command -v npm >/dev/null && return 0 ;;
  esac
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"
}

missing=()
for p in "${want[@]}"; do
  if ! installed "$p"; then
    case " ${missing[*]-} " in *" $p "*) ;; *) missing+=("$p") ;; esac
  fi
done

# CI services set CI=true (GitHub Actions, GitLab CI, ...; ./run.sh ci too).
is_ci() {
  case ${CI:-} in true | TRUE | True | 1) return 0 ;; *) return 1 ;; esac
}

# The JWT interoperability tests check our tokens with node's jose package,
# pinned by tests/jwt/interop/package-lock.json; the events interoperability
# tests use the official NATS client, pinned by tests/events/interop's; the
# trace tests decode our spans with the OpenTelemetry definitions, pinned by
# tests/trace/collector's.
npm_deps() {
  npm_ci_in tests/jwt/interop jose "$@"
  npm_ci_in tests/events/interop @nats-io/jetstream "$@"
  npm_ci_in tests/trace/collector @opentelemetry/otlp-transformer "$@"
}

npm_ci_in() {
  local rel=$1 probe=$2 dir
  shift 2
  dir=$(cd "$(dirname "$0")/.." && pwd)/$rel
  case " $* " in *" test "* | *" all "*) ;; *) return 0 ;; esac
  [ -f "$dir/package-lock.json" ] && [ ! -d "$dir/node_modules/$probe" ] || return 0
  echo "install-deps: npm ci in $rel"
  # Only the cross-check against jose needs it. On a developer's machine an
  # unreachable registry must not stop the build and every other test (the
  # test then says it is skipped). CI has the registry: there a failure is
  # fatal, as is the skip it would cause (tests/jwt/test_interop.c).
  if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
    if is_ci; then
      echo "install-deps: npm ci failed in $rel (CI=$CI: fatal)" >&2
      exit 1
    fi
    echo "install-deps: warning: npm ci failed in $rel; its interoperability test will be skipped" >&2
  fi
}

if [ ${#missing[@]} -eq 0 ]; then
  npm_deps "$@"
  echo "install-deps: everything for '$*' is installed"
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then
    sudo=(sudo)
  else
    echo "install-deps: need root to install: ${missing[*]}" >&2
    exit 1
  fi
fi

echo "install-deps: installing ${missing[*]}"
# Servers such as nginx, etcd and prometheus are run by the tests and
# benchmarks themselves, on loopback ports: keep the packages from starting
# system-wide daemons while they install.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod +x "$policy"
  made_policy=1
fi
cleanup() { if [ "$made_policy" = 1 ]; then "${sudo[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
npm_deps "$@"
echo "install-deps: done"
