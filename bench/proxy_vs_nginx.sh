#!/bin/sh
# Proxy-hop benchmark: one HTTP hop in front of the hello example. The
# libmsvc proxy (examples/proxy, libmsvc's server + pooled client), nginx
# proxy_pass with a keep-alive upstream and haproxy (http-reuse always)
# forward GET /hello to the same backend, in the same run, alternating
# between them. The proxy under test is pinned to one core; the backend and
# wrk share the other. For each proxy it reports requests/s, p50, p99 and
# the proxy's CPU time per request, as CONTRACTS.md section 6 lines (bench
# "proxy_hop") with the ratio to nginx.
#
#   bench/proxy_vs_nginx.sh [path/to/hello [path/to/proxy]]
#
# Environment: QUICK=1 (or MSVC_BENCH_QUICK=1) for a short smoke run;
# MSVC_BENCH_RESULTS=<file> appends the lines to that file too; PROXY_CPU /
# WRK_CPU choose the cores (0 and 1); DURATION, RUNS and CONNS override the
# run length (seconds), the runs per figure and wrk's connections (64).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
hello=${1:-${HELLO:-}}
proxy=${2:-${PROXY:-}}
for b in build build-bench; do
  [ -z "$hello" ] && [ -x "$here/../$b/examples/hello/hello" ] && hello=$here/../$b/examples/hello/hello
  [ -z "$proxy" ] && [ -x "$here/../$b/examples/proxy/proxy" ] && proxy=$here/../$b/examples/proxy/proxy
done
[ -n "$hello" ] && [ -x "$hello" ] || { echo "proxy_vs_nginx: hello program not found (pass its path)" >&2; exit 2; }
[ -n "$proxy" ] && [ -x "$proxy" ] || { echo "proxy_vs_nginx: proxy program not found (pass its path)" >&2; exit 2; }
for t in wrk nginx haproxy curl python3; do
  command -v $t >/dev/null || { echo "proxy_vs_nginx: $t not installed" >&2; exit 2; }
done

quick=${QUICK:-${MSVC_BENCH_QUICK:-0}}
if [ "$quick" != "0" ] && [ -n "$quick" ]; then
  duration=${DURATION:-2}; runs=${RUNS:-1}
else
  duration=${DURATION:-10}; runs=${RUNS:-3}
fi
conns=${CONNS:-64}
proxy_cpu=${PROXY_CPU:-0}
wrk_cpu=${WRK_CPU:-1}
hz=$(getconf CLK_TCK)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/msvc-bench-proxy.XXXXXX")
pids=""

cleanup() {
  for p in $pids; do
    kill -TERM "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

prog=proxy_vs_nginx
. "$here/lib.sh"

backend_port=$(free_port)
taskset -c "$wrk_cpu" "$hello" --port "$backend_port" >"$tmp/hello.out" 2>&1 &
pids="$pids $!"
wait_port "$backend_port"

libmsvc_port=$(free_port)
taskset -c "$proxy_cpu" "$proxy" --upstream "127.0.0.1:$backend_port" --port "$libmsvc_port" \
  --conns "$conns" >"$tmp/proxy.out" 2>&1 &
libmsvc_pid=$!
pids="$pids $libmsvc_pid"

nginx_port=$(free_port)
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx/nginx.conf" <<CONF
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
  upstream backend { server 127.0.0.1:$backend_port; keepalive $conns; keepalive_requests 100000000; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering on;
    }
  }
}
CONF
taskset -c "$proxy_cpu" nginx -e "$tmp/nginx/error.log" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" &
nginx_pid=$!
pids="$pids $nginx_pid"

haproxy_port=$(free_port)
cat >"$tmp/haproxy.cfg" <<CONF
global
  maxconn 4096
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend f
  bind 127.0.0.1:$haproxy_port
  default_backend b
backend b
  http-reuse always
  server s1 127.0.0.1:$backend_port
CONF
taskset -c "$proxy_cpu" haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.out" 2>&1 &
haproxy_pid=$!
pids="$pids $haproxy_pid"

wait_port "$libmsvc_port"
wait_port "$nginx_port"
wait_port "$haproxy_port"

impls="nginx haproxy libmsvc"
for impl in $impls; do : >"$tmp/runs.$impl"; done
i=0
while [ $i -lt "$runs" ]; do
  run_wrk "$nginx_pid" "$nginx_port" "$conns" /hello >>"$tmp/runs.nginx"
  run_wrk "$haproxy_pid" "$haproxy_port" "$conns" /hello >>"$tmp/runs.haproxy"
  run_wrk "$libmsvc_pid" "$libmsvc_port" "$conns" /hello >>"$tmp/runs.libmsvc"
  i=$((i + 1))
done
for impl in $impls; do
  for col in 1 2 3 4; do
    awk -v c=$col '{print $c}' "$tmp/runs.$impl" | median
  done | tr '\n' ' ' >"$tmp/res.$impl"
done

metrics="rps:req/s p50_ms:ms p99_ms:ms cpu_us_per_req:us"
for impl in $impls; do
  set -- $(cat "$tmp/res.$impl")
  n1=$1 n2=$2 n3=$3 n4=$4
  set -- $(cat "$tmp/res.nginx")
  col=1
  for m in $metrics; do
    name=${m%%:*}; unit=${m#*:}
    eval "v=\$n$col"
    eval "peer=\$$col"
    line="{\"bench\":\"proxy_hop\",\"impl\":\"$impl\",\"metric\":\"$name\",\"value\":$v,\"unit\":\"$unit\",\"runs\":$runs,\"conns\":$conns"
    if [ "$impl" != nginx ]; then
      ratio=$(awk -v a="$v" -v b="$peer" 'BEGIN { if (b > 0) printf "%.4g", a / b; else print 0 }')
      line="$line,\"ratio_vs\":\"nginx\",\"ratio\":$ratio"
    fi
    emit "$line}"
    col=$((col + 1))
  done
done
