# Shell helpers shared by the wrk-driven benchmark scripts. Sourced, not run:
#   . "$here/lib.sh"
# The caller sets: prog (its name, for messages), tmp (a scratch directory),
# duration (seconds per wrk run), wrk_cpu (the core wrk is pinned to) and
# hz (clock ticks per second, from getconf CLK_TCK). POSIX sh has no local
# variables, so the helpers' own names start with an underscore.

# free_port: ask the kernel for a free loopback port (bind port 0).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port PORT: until something answers HTTP on /hello there (5 s at most).
wait_port() {
  _i=0
  while ! curl -s -o /dev/null "http://127.0.0.1:$1/hello"; do
    _i=$((_i + 1))
    [ $_i -gt 100 ] && { echo "$prog: port $1 did not answer" >&2; exit 1; }
    sleep 0.05
  done
}

# cpu_ticks PID...: utime + stime of the processes, in clock ticks.
cpu_ticks() {
  _total=0
  for _p in "$@"; do
    _t=$(awk '{print $14 + $15}' "/proc/$_p/stat" 2>/dev/null || echo 0)
    _total=$((_total + _t))
  done
  echo "$_total"
}

# proc_tree PID: the process and its children (nginx's and haproxy's workers).
proc_tree() {
  echo "$1"
  ps -o pid= --ppid "$1" 2>/dev/null || true
}

# to_ms VALUE: wrk prints latencies as 12.34us, 1.20ms or 1.01s.
to_ms() {
  echo "$1" | awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v+0} else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000} else print v}'
}

# run_wrk PID PORT CONNS PATH [LUA] -> "rps p50_ms p99_ms cpu_us_per_req",
# the CPU time being that of the server's process tree over the run.
run_wrk() {
  _tree=$(proc_tree "$1" | tr '\n' ' ')
  _before=$(cpu_ticks $_tree)
  if [ -n "${5:-}" ]; then
    WRK_CONNS=$3 taskset -c "$wrk_cpu" wrk -t1 -c"$3" -d"${duration}s" --latency -s "$5" \
      "http://127.0.0.1:$2$4" >"$tmp/wrk.out" 2>&1 || true
  else
    taskset -c "$wrk_cpu" wrk -t1 -c"$3" -d"${duration}s" --latency \
      "http://127.0.0.1:$2$4" >"$tmp/wrk.out" 2>&1 || true
  fi
  if [ ! -e "/proc/$1" ]; then
    echo "$prog: the server under test (pid $1) exited during the run; wrk said:" >&2
    cat "$tmp/wrk.out" >&2
    exit 1
  fi
  _after=$(cpu_ticks $_tree)
  _reqs=$(awk '/requests in/ {print $1}' "$tmp/wrk.out")
  _rps=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk.out")
  _p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$tmp/wrk.out")")
  _p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$tmp/wrk.out")")
  # A script that knows better (bench/pipeline.lua) prints its own
  # percentiles, in microseconds.
  if grep -q '^msvc-batch-latency-us:' "$tmp/wrk.out"; then
    _p50=$(awk '/^msvc-batch-latency-us:/ {print $2 / 1000}' "$tmp/wrk.out")
    _p99=$(awk '/^msvc-batch-latency-us:/ {print $3 / 1000}' "$tmp/wrk.out")
  fi
  _errs=$(awk '/Non-2xx|Socket errors/ {print}' "$tmp/wrk.out")
  if [ -n "$_errs" ]; then echo "$prog: wrk reported: $_errs" >&2; fi
  _cpu=$(awk -v a="$_after" -v b="$_before" -v hz="$hz" -v n="${_reqs:-0}" \
    'BEGIN { if (n > 0) print (a - b) * 1e6 / hz / n; else print 0 }')
  echo "${_rps:-0} ${_p50:-0} ${_p99:-0} $_cpu"
}

# median: of the numbers on standard input, one per line.
median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

# mmm: "median min max" of the numbers on standard input, one per line.
mmm() { sort -g | awk '{v[NR]=$1} END {m = NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; print m, v[1], v[NR]}'; }

# summarize RUNS_FILE: one line per column of run_wrk's output (rps, p50,
# p99, cpu), each "median min max" over the runs.
summarize() {
  for _c in 1 2 3 4; do
    awk -v c=$_c '{print $c}' "$1" | mmm
  done
}

# ratio A B: A / B with 4 significant digits (0 when B is 0).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.4g", a / b; else print 0 }'; }

# emit_http BENCH IMPL CONNS SUMMARY PEER PEER_SUMMARY [CEILING CEILING_SUMMARY]:
# the four HTTP figures of IMPL (summaries written by summarize), each with
# the ratio to PEER's (none when PEER is empty or IMPL itself), and the CPU
# per request once more with the ratio to CEILING's when given.
emit_http() {
  _col=1
  for _m in rps:req/s p50_ms:ms p99_ms:ms cpu_us_per_req:us; do
    _name=${_m%%:*}
    _unit=${_m#*:}
    _v=$(sed -n "${_col}p" "$4")
    _med=${_v%% *}; _rest=${_v#* }; _lo=${_rest%% *}; _hi=${_rest#* }
    _line="{\"bench\":\"$1\",\"impl\":\"$2\",\"metric\":\"$_name\",\"value\":$_med,\"unit\":\"$_unit\",\"runs\":$runs,\"min\":$_lo,\"max\":$_hi,\"conns\":$3"
    if [ -n "$5" ] && [ "$5" != "$2" ]; then
      _pv=$(sed -n "${_col}p" "$6")
      emit "$_line,\"ratio_vs\":\"$5\",\"ratio\":$(ratio "$_med" "${_pv%% *}")}"
    else
      emit "$_line}"
    fi
    if [ "$_name" = cpu_us_per_req ] && [ -n "${7:-}" ] && [ "$7" != "$2" ]; then
      _pv=$(sed -n "${_col}p" "$8")
      emit "$_line,\"ratio_vs\":\"$7\",\"ratio\":$(ratio "$_med" "${_pv%% *}")}"
    fi
    _col=$((_col + 1))
  done
}

# emit LINE: a result line to stdout and to $MSVC_BENCH_RESULTS when set.
emit() {
  echo "$1"
  if [ -n "${MSVC_BENCH_RESULTS:-}" ]; then echo "$1" >>"$MSVC_BENCH_RESULTS"; fi
}
