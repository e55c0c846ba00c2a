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

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
  i=0
  while ! curl -sf -o /dev/null "http://127.0.0.1:$1/hello"; do
    i=$((i + 1)); [ $i -gt 100 ] && { echo "proxy_vs_nginx: port $1 did not answer" >&2; exit 1; }
    sleep 0.05
  done
}

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

cpu_ticks() {
  total=0
  for p in "$@"; do
    t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo "$total"
}

proc_tree() {
  echo "$1"
  ps -o pid= --ppid "$1" 2>/dev/null || true
}

to_ms() {
  echo "$1" | awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v+0} else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000} else print v}'
}

# run_wrk PID PORT -> "rps p50_ms p99_ms cpu_us_per_req"
run_wrk() {
  tree=$(proc_tree "$1" | tr '\n' ' ')
  before=$(cpu_ticks $tree)
  taskset -c "$wrk_cpu" wrk -t1 -c"$conns" -d"${duration}s" --latency \
    "http://127.0.0.1:$2/hello" >"$tmp/wrk.out" 2>&1
  after=$(cpu_ticks $tree)
  reqs=$(awk '/requests in/ {print $1}' "$tmp/wrk.out")
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk.out")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$tmp/wrk.out")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$tmp/wrk.out")")
  errs=$(awk '/Non-2xx|Socket errors/ {print}' "$tmp/wrk.out")
  [ -n "$errs" ] && echo "proxy_vs_nginx: wrk reported: $errs" >&2
  cpu=$(awk -v a="$after" -v b="$before" -v hz="$hz" -v n="${reqs:-0}" \
    'BEGIN { if (n > 0) print (a - b) * 1e6 / hz / n; else print 0 }')
  echo "${rps:-0} ${p50:-0} ${p99:-0} $cpu"
}

median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

impls="nginx haproxy libmsvc"
for impl in $impls; do : >"$tmp/runs.$impl"; done
i=0
while [ $i -lt "$runs" ]; do
  run_wrk "$nginx_pid" "$nginx_port" >>"$tmp/runs.nginx"
  run_wrk "$haproxy_pid" "$haproxy_port" >>"$tmp/runs.haproxy"
  run_wrk "$libmsvc_pid" "$libmsvc_port" >>"$tmp/runs.libmsvc"
  i=$((i + 1))
done
for impl in $impls; do
  for col in 1 2 3 4; do
    awk -v c=$col '{print $c}' "$tmp/runs.$impl" | median
  done | tr '\n' ' ' >"$tmp/res.$impl"
done

emit() {
  echo "$1"
  if [ -n "${MSVC_BENCH_RESULTS:-}" ]; then echo "$1" >>"$MSVC_BENCH_RESULTS"; fi
}

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
