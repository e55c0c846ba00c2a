# The example system for the soak test and the memory benchmark: two
# user-service instances, an order-service and a bff on a private local
# registry, every port a free one and every file in a scratch directory.
# Sourced by bash scripts, not run:
#
#   . "$here/soak/system.sh"
#   sys_find_bins DIR || exit 0    # DIR/<name>/<name>; says what is missing
#   sys_start TMPDIR               # sets sys_pids, sys_names, sys_urls, sys_*_url
#   sys_user; sys_login "$sys_email"   # a user: sys_user_id, sys_token
#   sys_stop
#
# The services log at warn level into TMPDIR/logs/<name>.log.

sys_pids=()
sys_names=()
sys_urls=()

# sys_find_bins DIR: sets sys_user_bin, sys_order_bin, sys_bff_bin; false
# (with a message naming what is missing) when one is not built.
sys_find_bins() {
  local name var missing=""
  for name in user-service order-service bff; do
    var=sys_${name%%-*}_bin
    if [ -x "$1/$name/$name" ]; then
      printf -v "$var" '%s' "$1/$name/$name"
    else
      missing="$missing $name"
    fi
  done
  if [ -n "$missing" ]; then
    echo "example services not built under $1:$missing" >&2
    return 1
  fi
}

sys_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# sys_service LABEL PROGRAM VAR=VALUE...: start it on a free port, wait until
# /ready answers 200 (20 s at most).
sys_service() {
  local label=$1 prog=$2 port pid n code=000
  shift 2
  port=$(sys_free_port)
  env MSVC_REGISTRY="local://$sys_tmp/registry" MSVC_HOST=127.0.0.1 \
    MSVC_REGISTRY_TTL_MS=6000 MSVC_JWT_ISSUER=user-service MSVC_JWT_AUDIENCE=msvc-demo \
    MSVC_LOG_LEVEL="${MSVC_LOG_LEVEL:-warn}" MSVC_PORT="$port" "$@" "$prog" \
    >>"$sys_tmp/logs/$label.log" 2>&1 &
  pid=$!
  for ((n = 0; n < 200; n++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -m 1 "http://127.0.0.1:$port/ready" || true)
    [ "$code" = 200 ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  sys_pids+=("$pid")
  sys_names+=("$label")
  sys_urls+=("http://127.0.0.1:$port")
  if [ "$code" != 200 ]; then
    echo "$label did not become ready; the end of its log:" >&2
    tail -n 20 "$sys_tmp/logs/$label.log" >&2
    return 1
  fi
}

# sys_start TMPDIR: the whole system, in dependency order.
sys_start() {
  local jwks=MSVC_JWT_JWKS_URL=http://user-service/.well-known/jwks.json
  sys_tmp=$1
  mkdir -p "$sys_tmp/logs" "$sys_tmp/registry"
  openssl ecparam -genkey -name prime256v1 -noout 2>/dev/null |
    openssl pkcs8 -topk8 -nocrypt -out "$sys_tmp/signing-key.pem"
  chmod 600 "$sys_tmp/signing-key.pem"
  sys_service user-service-1 "$sys_user_bin" USER_DB="$sys_tmp/users.db" \
    USER_SIGNING_KEY="$sys_tmp/signing-key.pem" || return 1
  sys_user_url=${sys_urls[0]}
  sys_service user-service-2 "$sys_user_bin" USER_DB="$sys_tmp/users.db" \
    USER_SIGNING_KEY="$sys_tmp/signing-key.pem" || return 1
  sys_service order-service "$sys_order_bin" ORDER_DB="$sys_tmp/orders.db" "$jwks" || return 1
  sys_order_url=${sys_urls[2]}
  # The load generators send as one or two users: no per-user limit here.
  # Nor the gateway's response cache, unless a benchmark of it asks
  # (SYS_BFF_CACHE=on): the others measure the path behind it.
  # SYS_BFF_CONCURRENCY sets the bff's MSVC_CONCURRENCY when a benchmark
  # compares it with a proxy that never sheds.
  sys_service bff "$sys_bff_bin" "$jwks" BFF_USER_RATE=100000 \
    BFF_CACHE="${SYS_BFF_CACHE:-off}" \
    ${SYS_BFF_CONCURRENCY:+MSVC_CONCURRENCY="$SYS_BFF_CONCURRENCY"} || return 1
  sys_bff_url=${sys_urls[3]}
}

# sys_user: a fresh user; sets sys_user_id and sys_email.
sys_user() {
  local out
  sys_email="soak.$$.$RANDOM$RANDOM@example.com"
  out=$(curl -s -m 10 -H 'Content-Type: application/json' \
    --data-binary "{\"name\":\"Soak Test\",\"email\":\"$sys_email\",\"password\":\"$sys_password\"}" \
    "$sys_user_url/users")
  sys_user_id=$(printf '%s' "$out" | sed -n 's/.*"id"[[:space:]]*:[[:space:]]*\([0-9]*\).*/\1/p')
  [ -n "$sys_user_id" ] || { echo "could not create a user: $out" >&2; return 1; }
}

# sys_login EMAIL: sets sys_token (an access token valid 15 minutes).
sys_login() {
  local out
  out=$(curl -s -m 10 -H 'Content-Type: application/json' \
    --data-binary "{\"email\":\"$1\",\"password\":\"$sys_password\"}" "$sys_user_url/login")
  sys_token=$(printf '%s' "$out" | sed -n 's/.*"access_token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
  [ -n "$sys_token" ] || { echo "could not log in: $out" >&2; return 1; }
}
sys_password="correct horse battery"

# sys_stop: SIGTERM in reverse start order, SIGKILL after 15 s.
sys_stop() {
  local i n pid
  for ((i = ${#sys_pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${sys_pids[$i]}" 2>/dev/null || true
  done
  for ((i = ${#sys_pids[@]} - 1; i >= 0; i--)); do
    pid=${sys_pids[$i]}
    for ((n = 0; n < 150; n++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  sys_pids=()
}

# sys_rss PID / sys_fds PID: resident set in bytes / open descriptors.
sys_rss() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
sys_fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
