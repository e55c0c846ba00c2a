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
    taskset -c "$wrk_cpu" wrk -t1 -c"$3" -d"${duration}s" --latency -s "$5" \
      "http://127.0.0.1:$2$4" >"$tmp/wrk.out" 2>&1
  else
    taskset -c "$wrk_cpu" wrk -t1 -c"$3" -d"${duration}s" --latency \
      "http://127.0.0.1:$2$4" >"$tmp/wrk.out" 2>&1
  fi
  _after=$(cpu_ticks $_tree)
  _reqs=$(awk '/requests in/ {print $1}' "$tmp/wrk.out")
  _rps=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk.out")
  _p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$tmp/wrk.out")")
  _p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$tmp/wrk.out")")
  _errs=$(awk '/Non-2xx|Socket errors/ {print}' "$tmp/wrk.out")
  [ -n "$_errs" ] && echo "$prog: wrk reported: $_errs" >&2
  _cpu=$(awk -v a="$_after" -v b="$_before" -v hz="$hz" -v n="${_reqs:-0}" \
    'BEGIN { if (n > 0) print (a - b) * 1e6 / hz / n; else print 0 }')
  echo "${_rps:-0} ${_p50:-0} ${_p99:-0} $_cpu"
}

# median: of the numbers on standard input, one per line.
median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

# emit LINE: a result line to stdout and to $MSVC_BENCH_RESULTS when set.
emit() {
  echo "$1"
  if [ -n "${MSVC_BENCH_RESULTS:-}" ]; then echo "$1" >>"$MSVC_BENCH_RESULTS"; fi
}
