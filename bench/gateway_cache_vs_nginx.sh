#!/usr/bin/env bash
# Cached gateway benchmark (bench "gateway_cache_hit"): GET /api/users/<id>
# through the bff's gateway with its response cache on (user-service
# answers "private, max-age=5": the bff keeps the answer per token and
# serves it from memory), against nginx proxy_cache serving the same
# answer from its cache (keyed by the URI and the Authorization header,
# kept 5 s, so both ask user-service about once per 5 s), in the same run,
# alternating. Both proxies are pinned to one core, user-service and wrk
# share the other. The bff's concurrency limit is off: answers from memory
# take microseconds, 64 connections queue on its one core, and the limit
# would shed what nginx (which never sheds) serves. Reports requests/s, p50, p99 and the proxy's CPU time
# per request, with the ratio to nginx. Needs the example services
# (skipped with a message when they are not built).
#
# Environment: QUICK=1 (or MSVC_BENCH_QUICK=1) for a short smoke run;
# MSVC_BENCH_RESULTS=<file>; BUILD_DIR; PROXY_CPU / WRK_CPU (0 and 1);
# DURATION, RUNS and CONNS (64).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${BUILD_DIR:-$here/../build-bench}
. "$here/soak/system.sh"
if ! sys_find_bins "$build/examples"; then
  echo "gateway_cache_vs_nginx: skipped" >&2
  exit 0
fi
for t in wrk nginx curl openssl python3 taskset; do
  command -v $t >/dev/null || { echo "gateway_cache_vs_nginx: $t not installed" >&2; exit 2; }
done

quick=${QUICK:-${MSVC_BENCH_QUICK:-0}}
if [ "$quick" != "0" ] && [ -n "$quick" ]; then
  duration=${DURATION:-2}; runs=${RUNS:-1}
else
  duration=${DURATION:-3}; runs=${RUNS:-5}
fi
conns=${CONNS:-64}
proxy_cpu=${PROXY_CPU:-0}
wrk_cpu=${WRK_CPU:-1}
hz=$(getconf CLK_TCK)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/msvc-bench-gwcache.XXXXXX")
nginx_pid=""
cleanup() {
  [ -z "$nginx_pid" ] || { kill -TERM "$nginx_pid" 2>/dev/null; wait "$nginx_pid" 2>/dev/null; } || true
  sys_stop
  rm -rf "$tmp"
}
trap cleanup EXIT

prog=gateway_cache_vs_nginx
. "$here/lib.sh"

SYS_BFF_CACHE=on MSVC_LOG_LEVEL=${MSVC_LOG_LEVEL:-error} sys_start "$tmp/sys" || exit 1
sys_user
sys_login "$sys_email" || exit 1
printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$sys_token" >"$tmp/auth.lua"
for i in 0 1 2; do taskset -pc "$wrk_cpu" "${sys_pids[$i]}" >/dev/null; done
taskset -pc "$proxy_cpu" "${sys_pids[3]}" >/dev/null
libmsvc_pid=${sys_pids[3]}
libmsvc_port=${sys_bff_url##*:}
u1=${sys_urls[0]#http://}
u2=${sys_urls[1]#http://}

nginx_port=$(free_port)
mkdir -p "$tmp/nginx/cache"
# Run as root, nginx's workers would switch to an account that cannot
# write the cache under this private directory: keep them as this user.
user_line=""
[ "$(id -u)" != 0 ] || user_line="user $(id -un);"
cat >"$tmp/nginx/nginx.conf" <<CONF
$user_line
daemon off;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log crit;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  proxy_cache_path $tmp/nginx/cache keys_zone=users:10m max_size=64m;
  upstream users { server $u1; server $u2; keepalive $conns; keepalive_requests 100000000; }
  server {
    listen 127.0.0.1:$nginx_port;
    location /api/users/ {
      proxy_pass http://users/users/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache users;
      # per token, like the bff's private entries; nginx would not keep a
      # "private" answer at all, so it is told to ignore Cache-Control
      proxy_cache_key \$uri\$http_authorization;
      proxy_ignore_headers Cache-Control Expires Set-Cookie;
      proxy_cache_valid 200 5s;
      add_header X-Cache \$upstream_cache_status;
    }
  }
}
CONF
taskset -c "$proxy_cpu" nginx -e "$tmp/nginx/error.log" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" &
nginx_pid=$!
path=/api/users/$sys_user_id
for _ in $(seq 1 100); do
  curl -s -o /dev/null -H "Authorization: Bearer $sys_token" "http://127.0.0.1:$nginx_port$path" && break
  sleep 0.05
done
# Both caches hold the answer before the runs: each says HIT on a second read.
for port in "$nginx_port" "$libmsvc_port"; do
  curl -s -o /dev/null -H "Authorization: Bearer $sys_token" "http://127.0.0.1:$port$path"
  head=$(curl -s -D - -o /dev/null -H "Authorization: Bearer $sys_token" \
    "http://127.0.0.1:$port$path" | tr -d '\r')
  hit=$(printf '%s\n' "$head" | awk -F': ' 'tolower($1)=="x-cache" {print $2}')
  [ "$hit" = HIT ] || { echo "gateway_cache_vs_nginx: port $port answered X-Cache: ${hit:-none}" >&2;
                        printf '%s\n' "$head" >&2; }
done

impls="nginx libmsvc"
for impl in $impls; do : >"$tmp/runs.$impl"; done
i=0
while [ $i -lt "$runs" ]; do
  for impl in $impls; do
    eval "pid=\$${impl}_pid; port=\$${impl}_port"
    run_wrk "$pid" "$port" "$conns" "$path" "$tmp/auth.lua" >>"$tmp/runs.$impl"
  done
  i=$((i + 1))
done
for impl in $impls; do
  summarize "$tmp/runs.$impl" >"$tmp/res.$impl"
  emit_http gateway_cache_hit "$impl" "$conns" "$tmp/res.$impl" nginx "$tmp/res.nginx"
done
