#!/usr/bin/env bash
# Soak test: the example system (two user-service instances, order-service,
# bff, a private local registry) under a steady mixed load through the bff
# (bench/soak/mix.lua) for SOAK_S seconds at about half of the capacity
# measured just before, sampling every process's RSS and open descriptors
# every 5 s. At the end it prints the requests served, the errors (socket
# errors and non-2xx answers: there must be none) and each process's RSS and
# descriptor growth after the first minute, where a leak shows as steady
# growth. Samples and the summary go to build/bench/soak.jsonl.
#
#   bench/soak/soak.sh          (or: make soak, ./run.sh soak)
#
# Environment: SOAK_S (300), SOAK_CONNS (connections of the steady load;
# default: enough for a pause of 5 ms or more), BUILD_DIR (build-bench),
# SOAK_OUT (build/bench/soak.jsonl). Exit status 1 when there were errors.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-$top/build-bench}
soak_s=${SOAK_S:-300}
conns=${SOAK_CONNS:-8}
out=${SOAK_OUT:-$top/build/bench/soak.jsonl}
interval=5
warmup=60
[ "$soak_s" -gt "$warmup" ] || warmup=$((soak_s / 2))

. "$here/system.sh"
sys_find_bins "$build/examples" || { echo "soak: skipped" >&2; exit 0; }
for t in wrk curl openssl python3; do
  command -v $t >/dev/null || { echo "soak: $t not installed" >&2; exit 2; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/msvc-soak.XXXXXX")
sampler=""
cleanup() {
  [ -z "$sampler" ] || kill "$sampler" 2>/dev/null || true
  sys_stop
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

sys_start "$tmp" || exit 1
sys_user && reader=$sys_user_id && reader_email=$sys_email
sys_user && writer_email=$sys_email
# One order so that the reader's dashboards have something to sum.
sys_login "$reader_email"
curl -s -o /dev/null -m 10 -H "Authorization: Bearer $sys_token" -H 'Content-Type: application/json' \
  --data-binary '{"items":[{"sku":"PEN-1","quantity":1,"unit_price_cents":199}]}' "$sys_order_url/orders"
echo "soak: system up (bff ${sys_bff_url}); reader user $reader"

# tokens: fresh ones for both users (valid 15 minutes).
tokens() {
  sys_login "$reader_email" && export SOAK_READER_TOKEN=$sys_token
  sys_login "$writer_email" && export SOAK_WRITER_TOKEN=$sys_token
}
export SOAK_READER=$reader
tokens

# load SECONDS [DELAY_MS]: the mix for that long; wrk's output in $tmp/wrk.out.
load() {
  SOAK_DELAY_MS=${2:-0} wrk -t1 -c"$conns" -d"${1}s" --timeout 10s -s "$here/mix.lua" \
    "$sys_bff_url" >"$tmp/wrk.out" 2>&1 || true
}
# wrk_field: requests, non-2xx answers and socket errors of the last run.
wrk_requests() { awk '/requests in/ {print $1}' "$tmp/wrk.out"; }
wrk_errors() {
  awk '/Non-2xx or 3xx responses:/ {n += $NF}
       /Socket errors:/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10}
       END {print n + 0}' "$tmp/wrk.out"
}

load 5
capacity=$(awk '/^Requests\/sec:/ {printf "%d", $2}' "$tmp/wrk.out")
cap_errors=$(wrk_errors)
[ "${capacity:-0}" -gt 0 ] || { echo "soak: the capacity run served nothing:" >&2; cat "$tmp/wrk.out" >&2; exit 1; }
target=$((capacity / 2))
[ "$target" -gt 0 ] || target=1
# At capacity a request takes conns / capacity; each connection pausing as
# long again between requests halves the rate. wrk's pause is in whole
# milliseconds, so use enough connections for it to be at least 5 ms.
if [ -z "${SOAK_CONNS:-}" ]; then
  conns=$(((capacity * 5 + 999) / 1000))
  [ "$conns" -ge 8 ] || conns=8
fi
delay_ms=$(((conns * 1000 + capacity / 2) / capacity))
[ "$delay_ms" -gt 0 ] || delay_ms=1
echo "soak: capacity ~${capacity} req/s (${cap_errors} errors); aiming at ~${target} req/s for ${soak_s} s ($conns connections, ${delay_ms} ms pause)"

mkdir -p "$(dirname "$out")"
: >"$out"
start=$(date +%s)
(
  while :; do
    t=$(($(date +%s) - start))
    for i in "${!sys_pids[@]}"; do
      p=${sys_pids[$i]}
      printf '{"soak":"sample","t_s":%d,"process":"%s","pid":%d,"rss_bytes":%d,"fds":%d}\n' \
        "$t" "${sys_names[$i]}" "$p" "$(sys_rss "$p")" "$(sys_fds "$p")"
    done >>"$out"
    sleep "$interval"
  done
) &
sampler=$!

# The load in segments of at most 10 minutes, each with fresh tokens.
served=0
errors=0
left=$soak_s
while [ "$left" -gt 0 ]; do
  seg=$((left > 600 ? 600 : left))
  load "$seg" "$delay_ms"
  served=$((served + $(wrk_requests)))
  errors=$((errors + $(wrk_errors)))
  left=$((left - seg))
  [ "$left" -le 0 ] || tokens
done
sleep 1
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
sampler=""

rate=$(awk -v n="$served" -v s="$soak_s" 'BEGIN {printf "%.0f", n / s}')
echo
echo "soak: ${served} requests in ${soak_s} s (${rate} req/s), ${errors} errors"
printf '%-16s %12s %12s %10s %8s %8s %6s\n' process "rss@${warmup}s" rss_end rss_growth "fds@${warmup}s" fds_end growth
for i in "${!sys_pids[@]}"; do
  name=${sys_names[$i]}
  # The first sample at or after the warm-up, and the last one.
  read -r r0 f0 r1 f1 < <(awk -v n="\"$name\"" -v w="$warmup" '
    index($0, "\"process\":" n ",") {
      match($0, /"t_s":[0-9]+/); t = substr($0, RSTART + 6, RLENGTH - 6) + 0
      match($0, /"rss_bytes":[0-9]+/); r = substr($0, RSTART + 12, RLENGTH - 12)
      match($0, /"fds":[0-9]+/); f = substr($0, RSTART + 6, RLENGTH - 6)
      if (t >= w && r0 == "") { r0 = r; f0 = f }
      r1 = r; f1 = f
    }
    END { if (r0 == "") { r0 = r1; f0 = f1 } print r0 + 0, f0 + 0, r1 + 0, f1 + 0 }' "$out")
  printf '%-16s %12d %12d %10d %8d %8d %6d\n' "$name" "$r0" "$r1" $((r1 - r0)) "$f0" "$f1" $((f1 - f0))
  printf '{"soak":"process","process":"%s","rss_after_warmup_bytes":%d,"rss_end_bytes":%d,"rss_growth_bytes":%d,"fds_after_warmup":%d,"fds_end":%d,"fds_growth":%d}\n' \
    "$name" "$r0" "$r1" $((r1 - r0)) "$f0" "$f1" $((f1 - f0)) >>"$out"
done
printf '{"soak":"summary","seconds":%d,"capacity_rps":%d,"target_rps":%d,"conns":%d,"requests":%d,"rps":%d,"errors":%d}\n' \
  "$soak_s" "$capacity" "$target" "$conns" "$served" "$rate" "$errors" >>"$out"
echo "samples and summary: $out"
[ "$errors" -eq 0 ]
