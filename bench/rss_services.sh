#!/usr/bin/env bash
# Memory of the example services: resident set (VmRSS) of each one idle,
# and after it has answered 10,000 requests on a typical route. hello alone;
# user-service (twice), order-service and bff started together as the demo
# system on a private local registry (skipped, with a message, when they are
# not built). Result lines (docs/reference.md): bench rss_idle_<service> and
# rss_10k_<service>, metric bytes. The idle connection cost against nginx is
# bench_http_rss's rss_per_conn.
#
# Environment: QUICK=1 (or MSVC_BENCH_QUICK=1): 2,000 requests instead (the
# figures keep their names);
# MSVC_BENCH_RESULTS=<file> appends the lines to that file too; BUILD_DIR.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${BUILD_DIR:-$here/../build-bench}
quick=${QUICK:-${MSVC_BENCH_QUICK:-0}}
count=10000
[ "$quick" = 0 ] || [ -z "$quick" ] || count=2000
command -v curl >/dev/null || { echo "rss_services: curl not installed" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/msvc-bench-rss.XXXXXX")
hello_pid=""
. "$here/soak/system.sh"
cleanup() {
  [ -z "$hello_pid" ] || { kill -TERM "$hello_pid" 2>/dev/null; wait "$hello_pid" 2>/dev/null; } || true
  sys_stop
  rm -rf "$tmp"
}
trap cleanup EXIT

emit() {
  echo "$1"
  if [ -n "${MSVC_BENCH_RESULTS:-}" ]; then echo "$1" >>"$MSVC_BENCH_RESULTS"; fi
}
rss_line() {
  emit "{\"bench\":\"$1\",\"impl\":\"libmsvc\",\"metric\":\"bytes\",\"value\":$2,\"unit\":\"B\",\"runs\":1}"
}

# hammer URL PATH [AUTH]: exactly $count requests on the route, 8 at a
# time over reused connections (curl --parallel); non-2xx answers reported.
hammer() {
  local i auth=()
  [ -z "${3:-}" ] || auth=(-H "Authorization: $3")
  for ((i = 0; i < count; i++)); do
    printf 'url = "%s%s"\noutput = "/dev/null"\n' "$1" "$2"
  done >"$tmp/urls"
  curl -sS --parallel --parallel-max 8 "${auth[@]}" -w '%{http_code}\n' -K "$tmp/urls" \
    2>"$tmp/curl.err" | sort | uniq -c >"$tmp/codes" || true
  if grep -qv ' 2[0-9][0-9]$' "$tmp/codes"; then
    echo "rss_services: answers from $1$2 other than 2xx (count, status):" >&2
    cat "$tmp/codes" "$tmp/curl.err" >&2
  fi
}

if [ -x "$build/examples/hello/hello" ]; then
  port=$(sys_free_port)
  "$build/examples/hello/hello" --port "$port" >"$tmp/hello.out" 2>&1 &
  hello_pid=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/hello" && break; sleep 0.05; done
  sleep 0.5
  rss_line rss_idle_hello "$(sys_rss "$hello_pid")"
  hammer "http://127.0.0.1:$port" /hello
  rss_line rss_10k_hello "$(sys_rss "$hello_pid")"
  kill -TERM "$hello_pid"
  wait "$hello_pid" 2>/dev/null || true
  hello_pid=""
fi

if ! sys_find_bins "$build/examples"; then
  echo "rss_services: the example services are skipped" >&2
  exit 0
fi
sys_start "$tmp" || exit 1
sys_user
sys_login "$sys_email"
sleep 1
for i in "${!sys_pids[@]}"; do
  rss_line "rss_idle_${sys_names[$i]//-/_}" "$(sys_rss "${sys_pids[$i]}")"
done
# A typical read on each process, then its resident set.
for i in "${!sys_pids[@]}"; do
  name=${sys_names[$i]}
  url=${sys_urls[$i]}
  case $name in
  user-service-*) hammer "$url" "/users/$sys_user_id" "Bearer $sys_token" ;;
  order-service) hammer "$url" "/orders?user_id=$sys_user_id" "Bearer $sys_token" ;;
  bff) hammer "$url" "/web/users/$sys_user_id/dashboard" "Bearer $sys_token" ;;
  esac
  rss_line "rss_10k_${name//-/_}" "$(sys_rss "${sys_pids[$i]}")"
done
