#!/bin/sh
# Proxy-hop benchmark: one HTTP hop in front of two hello backends. In the
# same run, alternating between them:
#   libmsvc             examples/proxy (libmsvc's server + pooled client,
#                       round robin by libmsvc's balancer)
#   libmsvc_least_conn  the same with --lb least_conn
#   nginx               proxy_pass to a keep-alive upstream (round robin)
#   haproxy             balance roundrobin, http-reuse always
#   haproxy_leastconn   balance leastconn, http-reuse always
# The proxy under test is pinned to one core; the backends and wrk share the
# other. For each proxy it reports requests/s, p50, p99 and the proxy's CPU
# time per request (median over the runs, with min and max), as result lines
# (docs/reference.md; bench "proxy_hop") with the ratio to nginx.
#
#   bench/proxy_vs_nginx.sh [path/to/hello [path/to/proxy]]
#
# Environment: QUICK=1 (or MSVC_BENCH_QUICK=1) for a short smoke run;
# MSVC_BENCH_RESULTS=<file> appends the lines to that file too; BUILD_DIR
# the build tree holding the programs; PROXY_CPU / WRK_CPU choose the cores
# (0 and 1); DURATION, RUNS and CONNS override the run length (seconds), the
# runs per figure and wrk's connections (64).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
hello=${1:-${HELLO:-}}
proxy=${2:-${PROXY:-}}
for b in ${BUILD_DIR:-} "$here/../build-bench" "$here/../build"; do
  [ -z "$hello" ] && [ -x "$b/examples/hello/hello" ] && hello=$b/examples/hello/hello
  [ -z "$proxy" ] && [ -x "$b/examples/proxy/proxy" ] && proxy=$b/examples/proxy/proxy
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
  duration=${DURATION:-3}; runs=${RUNS:-5}
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

b1=$(free_port)
b2=$(free_port)
for port in $b1 $b2; do
  taskset -c "$wrk_cpu" "$hello" --port "$port" >"$tmp/hello.$port.out" 2>&1 &
  pids="$pids $!"
done
wait_port "$b1"
wait_port "$b2"

libmsvc_port=$(free_port)
taskset -c "$proxy_cpu" "$proxy" --upstream "127.0.0.1:$b1" --upstream "127.0.0.1:$b2" \
  --port "$libmsvc_port" --conns "$conns" >"$tmp/proxy.out" 2>&1 &
libmsvc_pid=$!
pids="$pids $libmsvc_pid"

libmsvc_least_conn_port=$(free_port)
taskset -c "$proxy_cpu" "$proxy" --upstream "127.0.0.1:$b1" --upstream "127.0.0.1:$b2" \
  --port "$libmsvc_least_conn_port" --conns "$conns" --lb least_conn >"$tmp/proxy-lc.out" 2>&1 &
libmsvc_least_conn_pid=$!
pids="$pids $libmsvc_least_conn_pid"

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
  upstream backend {
    server 127.0.0.1:$b1;
    server 127.0.0.1:$b2;
    keepalive $conns;
    keepalive_requests 100000000;
  }
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

# start_haproxy IMPL BALANCE: one haproxy with one thread.
start_haproxy() {
  _port=$(free_port)
  cat >"$tmp/$1.cfg" <<CONF
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
  bind 127.0.0.1:$_port
  default_backend b
backend b
  balance $2
  http-reuse always
  server s1 127.0.0.1:$b1
  server s2 127.0.0.1:$b2
CONF
  taskset -c "$proxy_cpu" haproxy -db -f "$tmp/$1.cfg" >"$tmp/$1.out" 2>&1 &
  eval "${1}_pid=\$!; ${1}_port=\$_port"
  pids="$pids $!"
}
start_haproxy haproxy roundrobin
start_haproxy haproxy_leastconn leastconn

impls="nginx haproxy haproxy_leastconn libmsvc libmsvc_least_conn"
for impl in $impls; do
  eval "wait_port \$${impl}_port"
  : >"$tmp/runs.$impl"
done
i=0
while [ $i -lt "$runs" ]; do
  for impl in $impls; do
    eval "pid=\$${impl}_pid; port=\$${impl}_port"
    run_wrk "$pid" "$port" "$conns" /hello >>"$tmp/runs.$impl"
  done
  i=$((i + 1))
done
for impl in $impls; do
  summarize "$tmp/runs.$impl" >"$tmp/res.$impl"
done
for impl in $impls; do
  emit_http proxy_hop "$impl" "$conns" "$tmp/res.$impl" nginx "$tmp/res.nginx"
done
