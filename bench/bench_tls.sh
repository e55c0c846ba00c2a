#!/bin/sh
# HTTPS benchmark against nginx, in one run, with the same certificate and
# the same suite (ECDHE-ECDSA-AES128-GCM-SHA256, or ECDHE-RSA-... with the
# RSA certificate), both servers on one worker pinned to one core:
#   tls_hello                keep-alive GET /hello under wrk: req/s, p50,
#                            p99 and the server's CPU time per request
#   tls_handshake_full_<k>   new TLS sessions per second (openssl s_time -new)
#   tls_handshake_resumed_<k> resumed sessions per second (s_time -reuse)
# for k in ecdsa (P-256) and rsa (2048). Each figure carries the ratio to
# nginx's. libmsvc's server is `bench_tls --serve` (bench/bench_tls.c),
# its handshakes on a worker pool pinned to the same core as its loop
# (MSVC_BENCH_TLS_LOOP=1 runs them on the loop instead).
#
#   bench/bench_tls.sh [path/to/bench_tls]
#
# Environment: QUICK=1 (or MSVC_BENCH_QUICK=1) for a short run;
# MSVC_BENCH_RESULTS=<file> appends the lines there too; BUILD_DIR the
# build tree holding bench/bench_tls; SERVER_CPU / WRK_CPU the cores (0, 1);
# DURATION and RUNS the run length (s) and the number of runs per figure.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
prog=bench_tls
srvbin=${1:-}
for b in ${BUILD_DIR:-} "$here/../build-bench" "$here/../build"; do
  [ -z "$srvbin" ] && [ -x "$b/bench/bench_tls" ] && srvbin=$b/bench/bench_tls
done
[ -n "$srvbin" ] && [ -x "$srvbin" ] || { echo "$prog: bench_tls not found (pass its path)" >&2; exit 2; }
for t in wrk nginx openssl taskset; do
  command -v $t >/dev/null || { echo "$prog: $t not installed" >&2; exit 2; }
done
. "$here/lib.sh"

quick=${QUICK:-${MSVC_BENCH_QUICK:-0}}
if [ "$quick" != "0" ] && [ -n "$quick" ]; then
  duration=${DURATION:-2}; runs=${RUNS:-1}
else
  duration=${DURATION:-5}; runs=${RUNS:-3}
fi
server_cpu=${SERVER_CPU:-0}
wrk_cpu=${WRK_CPU:-1}
hz=$(getconf CLK_TCK)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/msvc-bench-tls.XXXXXX")
pids=""

cleanup() {
  for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
  for p in $pids; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/ecdsa.key" \
  -out "$tmp/ecdsa.crt" -subj /CN=localhost -days 30 >/dev/null 2>&1
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/rsa.key" -out "$tmp/rsa.crt" \
  -subj /CN=localhost -days 30 >/dev/null 2>&1

# start_ours KIND PORT / start_nginx KIND PORT: the server's pid in $pid.
start_ours() {
  taskset -c "$server_cpu" "$srvbin" --serve "$2" "$tmp/$1.crt" "$tmp/$1.key" &
  pid=$!
  pids="$pids $pid"
}

start_nginx() {
  if [ "$1" = ecdsa ]; then suite=ECDHE-ECDSA-AES128-GCM-SHA256; else suite=ECDHE-RSA-AES128-GCM-SHA256; fi
  cat >"$tmp/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1; pid $tmp/nginx.pid; error_log stderr error;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $tmp; proxy_temp_path $tmp;
  fastcgi_temp_path $tmp; uwsgi_temp_path $tmp; scgi_temp_path $tmp;
  ssl_session_cache shared:tls:1m; ssl_session_tickets on;
  server { listen 127.0.0.1:$2 ssl; ssl_protocols TLSv1.2; ssl_ciphers $suite;
    ssl_certificate $tmp/$1.crt; ssl_certificate_key $tmp/$1.key;
    location /hello { default_type text/plain; return 200 "hello, world!"; } } }
EOF
  taskset -c "$server_cpu" nginx -p "$tmp/" -c "$tmp/nginx.conf" -e stderr &
  pid=$!
  pids="$pids $pid"
}

wait_tls() {
  _i=0
  while ! curl -sk -o /dev/null "https://127.0.0.1:$1/hello"; do
    _i=$((_i + 1))
    [ $_i -gt 100 ] && { echo "$prog: port $1 did not answer" >&2; exit 1; }
    sleep 0.05
  done
}

stop() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# wrk_tls PID PORT HS_US -> "rps p50_ms p99_ms cpu_us_per_req"; the CPU
# per request leaves out the 32 handshakes wrk makes first (HS_US each,
# measured by s_time_cpu), since mbedtls's are far costlier than OpenSSL's
# and would otherwise dominate a short run.
wrk_tls() {
  _before=$(cpu_ticks $(proc_tree "$1"))
  taskset -c "$wrk_cpu" wrk -t1 -c32 -d"${duration}s" --latency "https://127.0.0.1:$2/hello" \
    >"$tmp/wrk.out" 2>&1
  _after=$(cpu_ticks $(proc_tree "$1"))
  _reqs=$(awk '/requests in/ {print $1}' "$tmp/wrk.out")
  _rps=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk.out")
  _p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$tmp/wrk.out")")
  _p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$tmp/wrk.out")")
  _cpu=$(awk -v a="$_after" -v b="$_before" -v hz="$hz" -v n="${_reqs:-0}" -v hs="$3" \
    'BEGIN { c = (a - b) * 1e6 / hz - 32 * hs; if (c < 0) c = 0;
             if (n > 0) print c / n; else print 0 }')
  echo "${_rps:-0} ${_p50:-0} ${_p99:-0} $_cpu"
}

# s_time PID PORT new|reuse -> "connections_per_s server_cpu_us_per_connection"
s_time() {
  _before=$(cpu_ticks $(proc_tree "$1"))
  taskset -c "$wrk_cpu" openssl s_time -connect "127.0.0.1:$2" -"$3" -time "$duration" \
    >"$tmp/s_time.out" 2>/dev/null || true
  _after=$(cpu_ticks $(proc_tree "$1"))
  awk -v a="$_after" -v b="$_before" -v hz="$hz" \
    '/real seconds/ { printf "%g %g\n", $1 / $4, ($1 > 0 ? (a - b) * 1e6 / hz / $1 : 0); exit }' \
    "$tmp/s_time.out"
}

# one_line BENCH IMPL METRIC UNIT VALUES_FILE [PEER_VALUES_FILE]
one_line() {
  _s=$(mmm <"$5")
  _m=${_s%% *}; _r=${_s#* }; _lo=${_r%% *}; _hi=${_r#* }
  _line="{\"bench\":\"$1\",\"impl\":\"$2\",\"metric\":\"$3\",\"value\":$_m,\"unit\":\"$4\",\"runs\":$runs,\"min\":$_lo,\"max\":$_hi"
  if [ -n "${6:-}" ]; then
    emit "$_line,\"ratio_vs\":\"nginx\",\"ratio\":$(ratio "$_m" "$(median <"$6")")}"
  else
    emit "$_line}"
  fi
}

for kind in ecdsa rsa; do
  for impl in libmsvc nginx; do
    : >"$tmp/$impl.hello"; : >"$tmp/$impl.new"; : >"$tmp/$impl.reuse"
  done
  r=0
  while [ $r -lt "$runs" ]; do
    # the servers take turns going first, so that neither always meets
    # the state the other left behind (sockets in TIME_WAIT, caches)
    order="nginx libmsvc"
    [ $((r % 2)) -eq 1 ] && order="libmsvc nginx"
    for impl in $order; do
      port=$(free_port)
      if [ $impl = libmsvc ]; then start_ours $kind "$port"; else start_nginx $kind "$port"; fi
      wait_tls "$port"
      s_time "$pid" "$port" new >"$tmp/st"
      awk '{print $1}' "$tmp/st" >>"$tmp/$impl.new"
      s_time "$pid" "$port" reuse | awk '{print $1}' >>"$tmp/$impl.reuse"
      if [ $kind = ecdsa ]; then
        wrk_tls "$pid" "$port" "$(awk '{print $2}' "$tmp/st")" >>"$tmp/$impl.hello"
      fi
      stop "$pid"
    done
    r=$((r + 1))
  done
  if [ $kind = ecdsa ]; then
    for impl in nginx libmsvc; do
      summarize "$tmp/$impl.hello" >"$tmp/$impl.sum"
    done
    emit_http tls_hello nginx 32 "$tmp/nginx.sum" "" ""
    emit_http tls_hello libmsvc 32 "$tmp/libmsvc.sum" nginx "$tmp/nginx.sum"
  fi
  one_line "tls_handshake_full_$kind" nginx ops_per_s handshakes/s "$tmp/nginx.new"
  one_line "tls_handshake_full_$kind" libmsvc ops_per_s handshakes/s "$tmp/libmsvc.new" "$tmp/nginx.new"
  one_line "tls_handshake_resumed_$kind" nginx ops_per_s handshakes/s "$tmp/nginx.reuse"
  one_line "tls_handshake_resumed_$kind" libmsvc ops_per_s handshakes/s "$tmp/libmsvc.reuse" "$tmp/nginx.reuse"
done
