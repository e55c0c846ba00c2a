#!/usr/bin/env bash
# Loop latency under blocking work: user-service from the examples, wrk on
# GET /users/:id with 16 connections alone, then again while two login
# loops (POST /login: a password hash and a database read each) run beside
# it, in the same run. Lines (bench loop_p99_under_blocking):
#   p99_ms and rps of libmsvc_alone and libmsvc_with_logins,
#   p99_ratio of libmsvc (p99 with logins / p99 alone),
#   ops_per_s of libmsvc_with_logins: logins per second during the run.
#
# Environment: QUICK=1 (or MSVC_BENCH_QUICK=1): 2 s per run, one run;
# DURATION / RUNS override; MSVC_BENCH_RESULTS=<file> appends the lines
# there too; BUILD_DIR (default ../build-bench); WRK_CPU (default 1).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${BUILD_DIR:-$here/../build-bench}
quick=${QUICK:-${MSVC_BENCH_QUICK:-0}}
prog=loop_p99_under_blocking
if [ "$quick" != 0 ] && [ -n "$quick" ]; then
  duration=${DURATION:-2}; runs=${RUNS:-1}
else
  duration=${DURATION:-10}; runs=${RUNS:-3}
fi
wrk_cpu=${WRK_CPU:-1}
hz=$(getconf CLK_TCK)
for t in wrk curl openssl; do
  command -v "$t" >/dev/null || { echo "$prog: $t not installed" >&2; exit 2; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/msvc-bench-blocking.XXXXXX")
. "$here/lib.sh"
. "$here/soak/system.sh"
login_pid=""
cleanup() {
  [ -z "$login_pid" ] || kill "$login_pid" 2>/dev/null || true
  sys_stop
  rm -rf "$tmp"
}
trap cleanup EXIT

emit() {
  echo "$1"
  if [ -n "${MSVC_BENCH_RESULTS:-}" ]; then echo "$1" >>"$MSVC_BENCH_RESULTS"; fi
}

if ! sys_find_bins "$build/examples"; then
  echo "$prog: user-service is not built in $build; skipped" >&2
  exit 0
fi
sys_tmp=$tmp
mkdir -p "$tmp/logs" "$tmp/registry"
openssl ecparam -genkey -name prime256v1 -noout 2>/dev/null |
  openssl pkcs8 -topk8 -nocrypt -out "$tmp/signing-key.pem"
chmod 600 "$tmp/signing-key.pem"
sys_service user-service "$sys_user_bin" USER_DB="$tmp/users.db" \
  USER_SIGNING_KEY="$tmp/signing-key.pem" || exit 1
sys_user_url=${sys_urls[0]}
pid=${sys_pids[0]}
port=${sys_user_url##*:}
sys_user
sys_login "$sys_email"

# Reading an account needs a token (the reader's own).
cat >"$tmp/read.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $sys_token"
LUA
cat >"$tmp/login.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"email":"$sys_email","password":"$sys_password"}'
LUA

: >"$tmp/alone"
: >"$tmp/with"
: >"$tmp/logins"
for ((r = 0; r < runs; r++)); do
  run_wrk "$pid" "$port" 16 "/users/$sys_user_id" "$tmp/read.lua" >>"$tmp/alone"
  # Two login loops: one wrk thread, two connections, each sending its next
  # login as soon as the last is answered.
  wrk -t1 -c2 -d"$((duration + 1))s" -s "$tmp/login.lua" "$sys_user_url/login" \
    >"$tmp/login.out" 2>&1 &
  login_pid=$!
  sleep 0.5
  run_wrk "$pid" "$port" 16 "/users/$sys_user_id" "$tmp/read.lua" >>"$tmp/with"
  wait "$login_pid" || true
  login_pid=""
  if grep -q 'Non-2xx' "$tmp/login.out"; then
    echo "$prog: some logins failed:" >&2
    grep 'Non-2xx' "$tmp/login.out" >&2
  fi
  awk '/^Requests\/sec:/ {print $2}' "$tmp/login.out" >>"$tmp/logins"
done

summarize "$tmp/alone" >"$tmp/alone.sum"
summarize "$tmp/with" >"$tmp/with.sum"
line() { sed -n "$1p" "$2"; }
fig() {
  local v lo hi rest
  v=$(line "$1" "$2"); lo=${v#* }; hi=${lo#* }; lo=${lo%% *}; v=${v%% *}
  echo "$v $lo $hi"
}
read -r p99a p99a_lo p99a_hi <<<"$(fig 3 "$tmp/alone.sum")"
read -r p99w p99w_lo p99w_hi <<<"$(fig 3 "$tmp/with.sum")"
read -r rpsa rpsa_lo rpsa_hi <<<"$(fig 1 "$tmp/alone.sum")"
read -r rpsw rpsw_lo rpsw_hi <<<"$(fig 1 "$tmp/with.sum")"
read -r lg lg_lo lg_hi <<<"$(mmm <"$tmp/logins")"
base="\"bench\":\"$prog\""
emit "{$base,\"impl\":\"libmsvc_alone\",\"metric\":\"p99_ms\",\"value\":$p99a,\"unit\":\"ms\",\"runs\":$runs,\"min\":$p99a_lo,\"max\":$p99a_hi,\"conns\":16}"
emit "{$base,\"impl\":\"libmsvc_with_logins\",\"metric\":\"p99_ms\",\"value\":$p99w,\"unit\":\"ms\",\"runs\":$runs,\"min\":$p99w_lo,\"max\":$p99w_hi,\"conns\":16}"
emit "{$base,\"impl\":\"libmsvc\",\"metric\":\"p99_ratio\",\"value\":$(ratio "$p99w" "$p99a"),\"unit\":\"x\",\"runs\":$runs}"
emit "{$base,\"impl\":\"libmsvc_alone\",\"metric\":\"rps\",\"value\":$rpsa,\"unit\":\"req/s\",\"runs\":$runs,\"min\":$rpsa_lo,\"max\":$rpsa_hi,\"conns\":16}"
emit "{$base,\"impl\":\"libmsvc_with_logins\",\"metric\":\"rps\",\"value\":$rpsw,\"unit\":\"req/s\",\"runs\":$runs,\"min\":$rpsw_lo,\"max\":$rpsw_hi,\"conns\":16,\"ratio_vs\":\"libmsvc_alone\",\"ratio\":$(ratio "$rpsw" "$rpsa")}"
emit "{$base,\"impl\":\"libmsvc_with_logins\",\"metric\":\"ops_per_s\",\"value\":$lg,\"unit\":\"logins/s\",\"runs\":$runs,\"min\":$lg_lo,\"max\":$lg_hi}"
