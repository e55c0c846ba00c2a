#!/usr/bin/env bash
# The example system on one machine: two user-service instances, one
# order-service and one bff, found by each other through a registry, and a
# scripted session against them with curl. With events on, a NATS
# JetStream broker and payment-service join, and orders go through the
# order saga (pending -> confirmed, or cancelled when declined).
#
#   examples/demo.sh [--smoke] [--tls] [--registry local|etcd] [--bin-dir DIR]
#                    [--events auto|on|off] [--keep-logs] [--quiet] [--help]
#
#   (default)          run the session, then stay up until Ctrl-C
#   --smoke            check every answer (status and key fields), stop
#                      everything, exit 0 only if every check passed
#   --tls              every service on mutual TLS: a private CA and one
#                      certificate per service made with openssl at start;
#                      curl uses --cacert/--cert/--key
#   --registry etcd    start a private etcd (the `etcd` binary) and use it
#                      instead of a private local:// registry directory
#   --events MODE      on: start nats-server (-js, a temporary store) and
#                      payment-service, and show the order saga; off: no
#                      broker; auto (default): on when nats-server and the
#                      payment-service program are both there (and the
#                      programs link libnats)
#   --bin-dir DIR      where the programs are: DIR/<name>/<name> (a build
#                      tree's examples/) or DIR/<name> (an installed bin/);
#                      default ${BUILD_DIR:-build}/examples
#   --keep-logs        keep the services' logs when the demo ends (the
#                      rest of its temporary directory is removed)
#   --quiet            print only the steps and the checks, not the bodies
#   --help             print this and exit
#
# With gRPC built (order-service and the bff then carry orders.v1.Orders),
# a second bff reads the dashboards' orders over gRPC, and a small grpcio
# client (examples/grpc_orders.py; Debian python3-grpcio, python3-grpc-tools)
# calls order-service's gRPC API on its HTTP port.
#
# Every curl command is printed exactly as it runs, so it can be pasted
# into a shell: set TOKEN as printed after the log-in first. Every port is
# a free one chosen at start, and every file lives in a fresh temporary
# directory, so two demos never collide. Needs bash, curl and openssl (and
# etcd for --registry etcd, nats-server for --events on).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
mode=interactive
registry=local
bin_dir=${BUILD_DIR:-build}/examples
quiet=0
tls=0
events=auto
keep_logs=${DEMO_KEEP_LOGS:+1}
keep_logs=${keep_logs:-0}

# The comment block at the top of this file, up to `set -euo pipefail`.
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case $1 in
  --smoke) mode=smoke ;;
  --tls) tls=1 ;;
  --registry)
    [ $# -ge 2 ] || { echo "demo: --registry needs local or etcd" >&2; exit 2; }
    registry=$2
    shift ;;
  --registry=*) registry=${1#--registry=} ;;
  --bin-dir)
    [ $# -ge 2 ] || { echo "demo: --bin-dir needs a directory" >&2; exit 2; }
    bin_dir=$2
    shift ;;
  --bin-dir=*) bin_dir=${1#--bin-dir=} ;;
  --events)
    [ $# -ge 2 ] || { echo "demo: --events needs auto, on or off" >&2; exit 2; }
    events=$2
    shift ;;
  --events=*) events=${1#--events=} ;;
  --quiet) quiet=1 ;;
  --keep-logs) keep_logs=1 ;;
  -h | --help) usage; exit 0 ;;
  *) echo "demo: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
case $registry in
local | etcd) ;;
*) echo "demo: --registry must be local or etcd, not '$registry'" >&2; exit 2 ;;
esac
case $events in
auto | on | off) ;;
*) echo "demo: --events must be auto, on or off, not '$events'" >&2; exit 2 ;;
esac
# A relative --bin-dir is taken from the repository root when it is not
# found from the current directory, so `cd examples && ./demo.sh` works too.
if [ ! -d "$bin_dir" ] && [ -d "$here/../$bin_dir" ]; then
  bin_dir=$here/../$bin_dir
fi

for tool in curl openssl; do
  command -v "$tool" >/dev/null || { echo "demo: needs $tool" >&2; exit 2; }
done

# ---- output --------------------------------------------------------------

if [ -t 1 ]; then
  bold=$'\e[1m' green=$'\e[32m' red=$'\e[31m' dim=$'\e[2m' off=$'\e[0m'
else
  bold='' green='' red='' dim='' off=''
fi
step_no=0
step() {
  step_no=$((step_no + 1))
  printf '\n%s%d. %s%s\n' "$bold" "$step_no" "$*" "$off"
}
note() { printf '   %s\n' "$*"; }
passed=0
failed=0
failures=()
ok() {
  passed=$((passed + 1))
  printf '   %scheck: %s%s\n' "$green" "$*" "$off"
}
bad() {
  failed=$((failed + 1))
  failures+=("step $step_no: $*")
  printf '   %sFAILED: %s%s\n' "$red" "$*" "$off"
}

# ---- temporary state and clean-up ----------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/msvc-demo.XXXXXX")
pids=()
names=()
etcd_pid=
nats_pid=
trace_pid=

stop_all() {
  local i pid n
  # Reverse start order: the bff stops before the services it calls.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[$i]}
    kill -TERM "$pid" 2>/dev/null || true
  done
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[$i]}
    # The services drain for at most a few seconds; do not hang on one that
    # does not stop.
    for ((n = 0; n < 150; n++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "demo: ${names[$i]} (pid $pid) did not stop in 15 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  pids=()
  if [ -n "$trace_pid" ]; then
    kill -TERM "$trace_pid" 2>/dev/null || true
    wait "$trace_pid" 2>/dev/null || true
    trace_pid=
  fi
  if [ -n "$etcd_pid" ]; then
    kill -TERM "$etcd_pid" 2>/dev/null || true
    wait "$etcd_pid" 2>/dev/null || true
    etcd_pid=
  fi
  if [ -n "$nats_pid" ]; then
    kill -TERM "$nats_pid" 2>/dev/null || true
    wait "$nats_pid" 2>/dev/null || true
    nats_pid=
  fi
}

cleaned=0
cleanup() {
  [ "$cleaned" = 0 ] || return 0
  cleaned=1
  trap - INT TERM
  stop_all
  if [ "$keep_logs" = 1 ] && [ -d "$tmp/logs" ]; then
    # Keys, certificates and databases go; only the logs stay.
    find "$tmp" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +
    echo "demo: the services' logs are kept in $tmp/logs" >&2
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
# Ctrl-C is the normal end once the system is up (exit 0); before that it
# interrupts the demo (130).
serving=0
trap 'echo; echo "stopping..."; [ "$serving" = 1 ] && exit 0; exit 130' INT
trap 'exit 143' TERM

# ---- ports and programs --------------------------------------------------

# A port counts as free when nothing accepts a connection on it; a port taken
# between this check and the bind makes the service exit, and start_service
# then tries another one.
used_ports=" "
free_port() {
  local p
  while :; do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    case $used_ports in *" $p "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      used_ports="$used_ports$p "
      echo "$p"
      return
    fi
  done
}

find_bin() {
  local name=$1
  if [ -x "$bin_dir/$name/$name" ]; then
    echo "$bin_dir/$name/$name"
  elif [ -x "$bin_dir/$name" ] && [ -f "$bin_dir/$name" ]; then
    echo "$bin_dir/$name"
  else
    echo "demo: no $name program under $bin_dir (build with ./run.sh demo, or pass --bin-dir)" >&2
    return 1
  fi
}

user_bin=$(find_bin user-service)
order_bin=$(find_bin order-service)
bff_bin=$(find_bin bff)
payment_bin=
if [ "$events" != off ]; then
  if [ "$events" = on ]; then
    command -v nats-server >/dev/null || { echo "demo: --events on needs nats-server (Debian: nats-server)" >&2; exit 2; }
    payment_bin=$(find_bin payment-service)
  elif command -v nats-server >/dev/null && ldd "$order_bin" 2>/dev/null | grep -q libnats; then
    # auto: the broker is there, and the programs were built with the
    # events block's nats:// backend (libnats).
    payment_bin=$(find_bin payment-service 2>/dev/null) || payment_bin=
  fi
  [ -n "$payment_bin" ] && events=on || events=off
fi

# gRPC: the programs were built with it, and a Python 3 with grpcio and
# grpc_tools is there for the client (the first one found).
grpc=0
grpc_py=
if grep -q 'orders\.v1\.Orders' "$order_bin" 2>/dev/null &&
   grep -q 'orders\.v1\.Orders' "$bff_bin" 2>/dev/null; then
  grpc=1
  for py in /usr/bin/python3 python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import grpc, grpc_tools.protoc' 2>/dev/null; then
      grpc_py=$py
      break
    fi
  done
fi

mkdir -p "$tmp/logs" "$tmp/registry"

# ---- registry ------------------------------------------------------------

start_etcd() {
  local client peer n
  command -v etcd >/dev/null || { echo "demo: --registry etcd needs the etcd binary (Debian: etcd-server)" >&2; exit 2; }
  for attempt in 1 2 3; do
    client=$(free_port)
    peer=$(free_port)
    etcd --name demo --data-dir "$tmp/etcd" \
      --listen-client-urls "http://127.0.0.1:$client" \
      --advertise-client-urls "http://127.0.0.1:$client" \
      --listen-peer-urls "http://127.0.0.1:$peer" \
      --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
      --initial-cluster "demo=http://127.0.0.1:$peer" \
      --initial-cluster-state new >"$tmp/logs/etcd.log" 2>&1 &
    etcd_pid=$!
    for ((n = 0; n < 100; n++)); do
      if curl -fsS -m 1 "http://127.0.0.1:$client/health" 2>/dev/null | grep -q '"health":"true"'; then
        registry_uri=etcd://127.0.0.1:$client
        note "etcd (pid $etcd_pid) answers on 127.0.0.1:$client, data in a temporary directory"
        return 0
      fi
      kill -0 "$etcd_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -TERM "$etcd_pid" 2>/dev/null || true
    wait "$etcd_pid" 2>/dev/null || true
    etcd_pid=
    rm -rf "$tmp/etcd"
    note "etcd did not start (attempt $attempt); trying other ports"
  done
  tail -n 20 "$tmp/logs/etcd.log" >&2
  echo "demo: etcd did not start" >&2
  exit 1
}

# A private JetStream broker: its store in the temporary directory, its
# port a free one, loopback only.
events_uri=
start_nats() {
  local p n
  for attempt in 1 2 3; do
    p=$(free_port)
    nats-server -js -sd "$tmp/nats" -a 127.0.0.1 -p "$p" >"$tmp/logs/nats-server.log" 2>&1 &
    nats_pid=$!
    for ((n = 0; n < 100; n++)); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        events_uri=nats://127.0.0.1:$p
        note "nats-server (pid $nats_pid) with JetStream on 127.0.0.1:$p, its store in a temporary directory"
        return 0
      fi
      kill -0 "$nats_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -TERM "$nats_pid" 2>/dev/null || true
    wait "$nats_pid" 2>/dev/null || true
    nats_pid=
    note "nats-server did not start (attempt $attempt); trying another port"
  done
  tail -n 20 "$tmp/logs/nats-server.log" >&2
  echo "demo: nats-server did not start" >&2
  exit 1
}

registry_uri=local://$tmp/registry
if [ "$events" = on ]; then
  printf '%slibmsvc demo%s: two user-service instances, an order-service, a payment-service and a bff, with a NATS JetStream broker\n' "$bold" "$off"
else
  printf '%slibmsvc demo%s: two user-service instances, an order-service and a bff\n' "$bold" "$off"
fi
printf 'programs from %s; state, keys and logs in %s\n' "$bin_dir" "$tmp"
if [ "$keep_logs" = 1 ]; then
  printf '(removed when the demo ends, except logs/)\n'
else
  printf '(removed when the demo ends; --keep-logs keeps logs/)\n'
fi
step "Prepare a registry, a signing key and the databases"
if [ "$registry" = etcd ]; then
  start_etcd
else
  note "registry: $registry_uri (one file per instance, a private directory)"
fi
openssl ecparam -genkey -name prime256v1 -noout 2>/dev/null |
  openssl pkcs8 -topk8 -nocrypt -out "$tmp/signing-key.pem"
chmod 600 "$tmp/signing-key.pem"
note "signing key: a fresh P-256 key that user-service signs its tokens with"
note "databases: $tmp/users.db (user-service), $tmp/orders.db (order-service)"
if [ "$events" = on ]; then
  note "           $tmp/payments.db (payment-service)"
  start_nats
else
  note "events: off (no broker; --events on needs nats-server)"
fi

# ---- TLS -----------------------------------------------------------------

# With --tls: a private CA, and for each service a P-256 certificate for
# 127.0.0.1 that it presents both as a server and as a client (mutual TLS).
scheme=http
tls_curl=()
make_cert() { # NAME: $tmp/tls/NAME.{crt,key}, signed by the demo CA
  local d=$tmp/tls
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/$1.key" 2>/dev/null
  openssl req -new -key "$d/$1.key" -subj "/CN=$1" -out "$d/$1.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,URI:spiffe://msvc-demo/%s\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n' \
    "$1" >"$d/$1.ext"
  openssl x509 -req -in "$d/$1.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/$1.ext" -out "$d/$1.crt" 2>/dev/null
  chmod 600 "$d/$1.key"
}
# tls_env NAME: the MSVC_TLS_* variables of the service NAME.
tls_env() {
  [ "$tls" = 1 ] || return 0
  printf '%s\n' "MSVC_TLS_CERT=$tmp/tls/$1.crt" "MSVC_TLS_KEY=$tmp/tls/$1.key" \
    "MSVC_TLS_CA=$tmp/tls/ca.crt" MSVC_TLS_CLIENT_AUTH=require \
    "MSVC_TLS_CLIENT_CERT=$tmp/tls/$1.crt" "MSVC_TLS_CLIENT_KEY=$tmp/tls/$1.key"
}
if [ "$tls" = 1 ]; then
  mkdir -p "$tmp/tls"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/tls/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$tmp/tls/ca.key" -subj "/CN=msvc demo CA" -days 2 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -out "$tmp/tls/ca.crt" 2>/dev/null
  for svc in user-service order-service payment-service bff demo-client; do make_cert "$svc"; done
  scheme=https
  tls_curl=(--cacert "$tmp/tls/ca.crt" --cert "$tmp/tls/demo-client.crt"
            --key "$tmp/tls/demo-client.key")
  # Every curl below speaks to the services over mutual TLS.
  curl() { command curl "${tls_curl[@]}" "$@"; }
  note "TLS: a private CA and one certificate per service in $tmp/tls; every service requires client certificates"
fi

# ---- services ------------------------------------------------------------

# Variables every service gets: where the registry is and what its tokens
# say. The key itself is only user-service's; the others verify through the
# JWK Set it publishes, found by name through discovery.
common_env=(MSVC_REGISTRY="$registry_uri" MSVC_HOST=127.0.0.1
            MSVC_REGISTRY_TTL_MS=6000 MSVC_JWT_ISSUER=user-service
            MSVC_JWT_AUDIENCE=msvc-demo MSVC_LOG_LEVEL="${MSVC_LOG_LEVEL:-info}")
verify_env=(MSVC_JWT_JWKS_URL=http://user-service/.well-known/jwks.json)

# Tracing: every service exports its spans over OTLP to a small collector
# (examples/otlp_collector.py), which the demo reads back as a waterfall.
if command -v python3 >/dev/null; then
  python3 "$here/otlp_collector.py" serve --out "$tmp/spans.jsonl" >"$tmp/collector.out" \
    2>"$tmp/logs/collector.log" &
  trace_pid=$!
  for ((n = 0; n < 50; n++)); do [ -s "$tmp/collector.out" ] && break; sleep 0.1; done
  trace_port=$(awk '{print $2}' "$tmp/collector.out")
  [ -n "$trace_port" ] && common_env+=(MSVC_OTLP_ENDPOINT="http://127.0.0.1:$trace_port")
fi

# start_service LABEL PROGRAM VAR=VALUE...: start it on a free port and wait
# until its /ready says 200. Sets $port. Each service also gets its admin
# pages (MSVC_ADMIN) on a loopback port the system picks (so it can never
# collide), read back from the line the service logs; admin_urls lists them.
admin_urls=()
start_service() {
  local label=$1 prog=$2 attempt pid n code
  local -a tls_vars=()
  shift 2
  mapfile -t tls_vars < <(tls_env "${label%-[0-9]}")
  for attempt in 1 2 3; do
    port=$(free_port)
    env "${common_env[@]}" "${tls_vars[@]}" MSVC_PORT="$port" \
      MSVC_ADMIN=127.0.0.1:0 "$@" "$prog" >>"$tmp/logs/$label.log" 2>&1 &
    pid=$!
    for ((n = 0; n < 200; n++)); do
      code=$(curl -s -o /dev/null -w '%{http_code}' -m 1 "$scheme://127.0.0.1:$port/ready" || true)
      [ "$code" = 200 ] && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if [ "$code" = 200 ] && kill -0 "$pid" 2>/dev/null; then
      pids+=("$pid")
      names+=("$label")
      note "$label (pid $pid) is ready on $scheme://127.0.0.1:$port  (log: logs/$label.log)"
      admin_url=$(grep -o 'http://127\.0\.0\.1:[0-9]*/debug/' "$tmp/logs/$label.log" | tail -n 1)
      note "$label admin pages: ${admin_url:-see logs/$label.log}"
      admin_urls+=("$(printf '%-16s %s' "$label" "${admin_url:-see logs/$label.log}")")
      return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    note "$label did not become ready on port $port (attempt $attempt)"
  done
  echo "demo: $label did not start; the end of its log:" >&2
  tail -n 20 "$tmp/logs/$label.log" >&2
  exit 1
}

step "Start the services and wait until each one's /ready answers 200"
start_service user-service-1 "$user_bin" USER_DB="$tmp/users.db" \
  USER_SIGNING_KEY="$tmp/signing-key.pem"
user1=$scheme://127.0.0.1:$port
start_service user-service-2 "$user_bin" USER_DB="$tmp/users.db" \
  USER_SIGNING_KEY="$tmp/signing-key.pem"
user2=$scheme://127.0.0.1:$port
events_env=()
[ "$events" = on ] && events_env=(MSVC_EVENTS="$events_uri")
start_service order-service "$order_bin" ORDER_DB="$tmp/orders.db" "${verify_env[@]}" \
  "${events_env[@]}"
orders=$scheme://127.0.0.1:$port
payments=
if [ "$events" = on ]; then
  start_service payment-service "$payment_bin" PAYMENT_DB="$tmp/payments.db" \
    "${verify_env[@]}" "${events_env[@]}"
  payments=$scheme://127.0.0.1:$port
fi
start_service bff "$bff_bin" "${verify_env[@]}"
bff=$scheme://127.0.0.1:$port
bff_grpc=
if [ "$grpc" = 1 ]; then
  start_service bff-2 "$bff_bin" "${verify_env[@]}" BFF_ORDERS_GRPC=1
  bff_grpc=$scheme://127.0.0.1:$port
  note "bff-2 reads the dashboards' orders from order-service over gRPC (BFF_ORDERS_GRPC=1)"
fi

# ---- a tiny HTTP and JSON toolkit ----------------------------------------

# shell_word WORD: WORD as a shell would need it typed (bare when that is
# safe, else in single quotes).
shell_word() {
  case $1 in
  '' | *[!A-Za-z0-9_./:=@%+,-]*) printf "'%s'" "${1//\'/\'\\\'\'}" ;;
  *) printf '%s' "$1" ;;
  esac
}

status=
body=
# call METHOD URL [JSON_BODY] [TOKEN]: prints the curl command exactly as it
# runs (the token as "$TOKEN", which the session prints after logging in),
# runs it, shows the answer; sets $status and $body. The -w option makes
# curl print the status on a line of its own after the body.
call() {
  local method=$1 url=$2 data=${3-} token=${4-} out shown arg
  local args=(command curl "${tls_curl[@]}" -sS -m 10 -X "$method" "$url")
  local show=("${args[@]:1}")
  if [ -n "$token" ]; then
    args+=(-H "Authorization: Bearer $token")
    show+=($'\x01')  # stands for the header with "$TOKEN", printed as such
  fi
  if [ -n "$data" ]; then
    args+=(-H 'Content-Type: application/json' --data-binary "$data")
    show+=(-H 'Content-Type: application/json' --data-binary "$data")
  fi
  args+=(-w '\nHTTP %{http_code}\n')
  show+=(-w '\nHTTP %{http_code}\n')
  shown=
  for arg in "${show[@]}"; do
    if [ "$arg" = $'\x01' ]; then
      shown="$shown -H \"Authorization: Bearer \$TOKEN\""
    else
      shown="$shown $(shell_word "$arg")"
    fi
  done
  printf '   %s$%s%s\n' "$dim" "$shown" "$off"
  last_shown=${shown# }
  out=$("${args[@]}" || true)
  status=${out##*$'\n'HTTP }
  body=${out%$'\n'HTTP *}
  case $status in [0-9][0-9][0-9]) ;; *) status=000 ;; esac
  if [ "$quiet" = 0 ]; then
    printf '   -> %s %s\n' "$status" "$(printf '%s' "$body" | head -c 600)"
  fi
}

# field NAME [TEXT]: the first value of "NAME" in a JSON text (a number, a
# string without quotes, null, true or false).
field() {
  local text=${2-$body}
  printf '%s' "$text" | grep -o "\"$1\"[[:space:]]*:[[:space:]]*\(\"[^\"]*\"\|[-0-9.eE+]*\|null\|true\|false\)" |
    head -n 1 | sed 's/^"[^"]*"[[:space:]]*:[[:space:]]*//; s/^"\(.*\)"$/\1/'
}

expect_status() {
  if [ "$status" = "$1" ]; then ok "status $1"; else bad "status $status, expected $1"; fi
}
# expect_field NAME VALUE: the first "NAME" in the body is VALUE.
expect_field() {
  local got
  got=$(field "$1")
  if [ "$got" = "$2" ]; then ok "$1 = $2"; else bad "$1 = '${got}', expected '$2'"; fi
}
# expect_has NAME: the body has a non-empty "NAME".
expect_has() {
  local got
  got=$(field "$1")
  if [ -n "$got" ] && [ "$got" != null ]; then ok "$1 present"; else bad "no $1 in the answer"; fi
}
# expect_match DESCRIPTION EXTENDED_REGEX: the body matches.
expect_match() {
  if printf '%s' "$body" | grep -Eq "$2"; then ok "$1"; else bad "$1"; fi
}

# metric_sum URL NAME [FILTER_REGEX]: sum of the samples of NAME whose
# labels match the filter.
metric_sum() {
  curl -s -m 5 "$1/metrics" | grep -E "^$2(\{|[[:space:]])" | grep -E "${3:-.}" |
    awk '{ s += $NF } END { printf "%d\n", s }'
}

# ---- the session ---------------------------------------------------------

email="ada.$$.$RANDOM@example.com"
password="correct horse battery"

step "Create a user on the first user-service instance"
call POST "$user1/users" "{\"name\":\"Ada Lovelace\",\"email\":\"$email\",\"password\":\"$password\"}"
expect_status 201
user_id=$(field id)
expect_field email "$email"
if printf '%s' "$body" | grep -q password; then bad "the answer contains the password"; else ok "no password in the answer"; fi
[ -n "$user_id" ] || user_id=0

step "The second instance shares the database: log in there, and read the user"
call POST "$user2/login" "{\"email\":\"$email\",\"password\":\"$password\"}"
expect_status 200
expect_field token_type Bearer
expect_field expires_in 900
token=$(field access_token)
note "the commands below that send the token use \$TOKEN; to paste them, first:"
printf '   %s$ TOKEN=%s%s\n' "$dim" "$token" "$off"
call GET "$user2/users/$user_id" "" "$token"
expect_status 200
expect_field name "Ada Lovelace"
expect_field email "$email"
note "the token is an ES256 JWT; order-service and bff check it against user-service's JWK Set"
call GET "$user1/.well-known/jwks.json"
expect_status 200
expect_field kty EC
expect_field crv P-256

step "Place an order (order-service checks the user through user-service)"
call POST "$orders/orders" '{"items":[{"sku":"BOOK-42","quantity":2,"unit_price_cents":1250},{"sku":"PEN-1","quantity":1,"unit_price_cents":199}]}' "$token"
expect_status 201
order_id=$(field id)
expect_field total_cents 2699
if [ "$events" = on ]; then
  expect_field status pending
  note "pending: order.created went into order-service's outbox with the order, in one transaction"
else
  expect_field status created
fi
[ -n "$order_id" ] || order_id=0
call GET "$orders/orders/$order_id" "" "$token"
expect_status 200
expect_field user_id "$user_id"
# The printed command is the one that ran: pasted into a new shell (with
# TOKEN set as printed), it gives the same answer.
pasted=$(TOKEN=$token bash -c "$last_shown" 2>&1 || true)
# With events on, the saga may confirm the order between the two reads:
# the answers are compared without the order's status.
unstatus() { sed -E 's/"status":"[a-z]+"//g'; }
if [ "$(printf '%s' "$pasted" | unstatus)" = "$(printf '%s\nHTTP %s' "$body" "$status" | unstatus)" ]; then
  ok "the printed command, pasted into a shell, gives the same answer"
else
  bad "the printed command gives something else when pasted: $(printf '%s' "$pasted" | tail -n 1)"
fi

step "Read the web dashboard through the bff (user and orders fetched at once)"
call GET "$bff/web/users/$user_id/dashboard" "" "$token"
expect_status 200
expect_field total_spent_cents 2699
expect_match 'nothing degraded' '"degraded"[[:space:]]*:[[:space:]]*\[\]'

if [ -n "${trace_port:-}" ]; then
  step "Follow one dashboard request across the services (its spans, exported over OTLP)"
  trace_id=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  curl "${tls_curl[@]}" -sS -m 10 -o /dev/null -H "Authorization: Bearer $token" \
    -H "traceparent: 00-$trace_id-00f067aa0ba902b7-01" "$bff/web/users/$user_id/dashboard"
  for ((n = 0; n < 40; n++)); do  # spans go out in batches, about once a second
    [ "$(grep -c "$trace_id" "$tmp/spans.jsonl" 2>/dev/null)" -ge 6 ] && break
    sleep 0.1
  done
  python3 "$here/otlp_collector.py" waterfall "$tmp/spans.jsonl" --trace "$trace_id" |
    sed 's/^/   /' | tee "$tmp/waterfall.txt"
  if grep -q 'bff .*GET /web/users/:id/dashboard' "$tmp/waterfall.txt" &&
     grep -q 'user-service .*GET /users/:id' "$tmp/waterfall.txt" &&
     grep -q 'order-service .*GET /orders' "$tmp/waterfall.txt"; then
    ok "one trace: bff's request and the calls it made to user-service and order-service"
  else
    bad "the dashboard's trace is incomplete"
  fi
fi

step "Read the mobile dashboard through the bff"
call GET "$bff/mobile/users/$user_id/dashboard" "" "$token"
expect_status 200
expect_field name "Ada Lovelace"
expect_field order_count 1
expect_match 'nothing degraded' '"degraded"[[:space:]]*:[[:space:]]*\[\]'

if [ "$grpc" = 1 ]; then
  step "gRPC: order-service serves orders.v1.Orders on the same port (HTTP/2)"
  grpc_tls=()
  [ "$tls" = 1 ] && grpc_tls=(--cacert "$tmp/tls/ca.crt" --cert "$tmp/tls/demo-client.crt"
                               --key "$tmp/tls/demo-client.key")
  # grpc_call [--no-token] ARGS...: like call, for examples/grpc_orders.py
  # (the token as "$TOKEN"); sets $body (one JSON line per message, or the
  # error) and $status (0, or 1 for an error status).
  grpc_call() {
    local shown arg tok=$token pre='TOKEN=$TOKEN '
    if [ "$1" = --no-token ]; then tok= pre=; shift; fi
    shown="$pre$(shell_word "$grpc_py") $(shell_word "$here/grpc_orders.py")"
    for arg in "${grpc_tls[@]}" "$@"; do shown="$shown $(shell_word "$arg")"; done
    printf '   %s$ %s%s\n' "$dim" "$shown" "$off"
    status=0
    body=$(TOKEN=$tok "$grpc_py" "$here/grpc_orders.py" "${grpc_tls[@]}" "$@" 2>&1) || status=1
    [ "$quiet" = 1 ] || printf '%s\n' "$body" | head -n 5 | sed 's/^/   -> /'
  }
  grpc_addr=127.0.0.1:${orders##*:}
  if [ -n "$grpc_py" ]; then
    grpc_call "$grpc_addr" get "$order_id"
    if [ "$status" = 0 ]; then ok "GetOrder answered"; else bad "GetOrder failed: $body"; fi
    expect_field id "$order_id"
    expect_field total_cents 2699
    grpc_call "$grpc_addr" list "$user_id"
    if [ "$status" = 0 ] && [ "$(printf '%s\n' "$body" | grep -c '"id"')" = 1 ]; then
      ok "ListOrders streamed the user's one order"
    else
      bad "ListOrders: $body"
    fi
    grpc_call --no-token "$grpc_addr" get "$order_id"
    expect_match 'without a token: UNAUTHENTICATED' '^UNAUTHENTICATED'
    grpc_call "$grpc_addr" health
    expect_field status SERVING
  else
    note "no Python 3 with grpcio and grpc_tools (python3-grpcio, python3-grpc-tools): the client calls are skipped"
  fi
  note "bff-2 builds the same dashboard with a ListOrders stream instead of GET /orders"
  call GET "$bff_grpc/web/users/$user_id/dashboard" "" "$token"
  expect_status 200
  expect_field total_spent_cents 2699
  expect_match 'nothing degraded' '"degraded"[[:space:]]*:[[:space:]]*\[\]'
  grpc_ok=$(metric_sum "$bff_grpc" msvc_grpc_client_handled_total 'method="ListOrders".*code="OK"')
  if [ "$grpc_ok" -ge 1 ]; then ok "bff-2 counted $grpc_ok ListOrders calls ending OK"
  else bad "bff-2 counted no ListOrders call"; fi
fi

step "A token is required, and it must be the caller's own dashboard"
call GET "$bff/web/users/$user_id/dashboard"
expect_status 401
expect_field code UNAUTHENTICATED
call GET "$bff/web/users/$((user_id + 1000))/dashboard" "" "$token"
expect_status 403
expect_field code PERMISSION_DENIED

step "Use the gateway: /api/... is proxied by service name, the prefix stripped"
call GET "$bff/api/users/$user_id" "" "$token"
expect_status 200
expect_field email "$email"
call GET "$bff/api/users?limit=200"
expect_status 401
expect_field code UNAUTHENTICATED
call GET "$bff/api/users?limit=200" "" "$token"
expect_status 200
if printf '%s' "$body" | grep -q '@'; then bad "the list shows email addresses"; else ok "the list shows ids and names, no email"; fi
call POST "$bff/api/login" "{\"email\":\"$email\",\"password\":\"$password\"}"
expect_status 200
expect_has access_token
call GET "$bff/api/orders?user_id=$user_id" "" "$token"
expect_status 200
expect_field total_cents 2699
call GET "$bff/api/users/999999999" "" "$token"
expect_status 404
expect_field code USER_NOT_FOUND

step "Guessing passwords: failed logins are limited per account, for the whole service"
note "5 failures per account, shared by the 2 user-service instances; then 429"
note "(the same answers whether the account exists or not; a success does not count)"
guess_email="mallory.$$.$RANDOM@example.com"
guess=0
while [ "$guess" -lt 8 ]; do
  guess=$((guess + 1))
  call POST "$bff/api/login" "{\"email\":\"$guess_email\",\"password\":\"guess number $guess\"}"
  [ "$status" = 401 ] || break
done
expect_status 429
expect_field code RATE_LIMITED
if [ "$guess" -ge 4 ] && [ "$guess" -le 6 ]; then ok "refused after $((guess - 1)) failures"
else bad "refused after $((guess - 1)) failures, expected 3 to 5"; fi
limit_headers=$(command curl "${tls_curl[@]}" -sS -m 10 -o /dev/null -D - -X POST "$bff/api/login" \
  -H 'Content-Type: application/json' \
  --data-binary "{\"email\":\"$guess_email\",\"password\":\"one more\"}" |
  tr -d '\r' | grep -i -E '^(retry-after|ratelimit-[a-z]+):' || true)
[ "$quiet" = 1 ] || printf '%s\n' "$limit_headers" | sed 's/^/   -> /'
if printf '%s' "$limit_headers" | grep -qi '^retry-after: [0-9]'; then ok "Retry-After and RateLimit-* headers"
else bad "no Retry-After on the 429"; fi

step "Spread: 20 requests through the gateway, balanced over both user-service instances"
# Two counters, read before and after, so that only these 20 requests count
# (both also counted the calls of the steps above): what the bff's
# balancer decided, and what each instance says it served.
picks() { # picks PORT: the bff's msvc_lb_picks_total for that instance
  metric_sum "$bff" msvc_lb_picks_total "service=\"user-service\".*endpoint=\"127.0.0.1:$1\"|endpoint=\"127.0.0.1:$1\".*service=\"user-service\""
}
port1=${user1##*:}
port2=${user2##*:}
before1=$(metric_sum "$user1" msvc_http_server_requests_total 'route="/users')
before2=$(metric_sum "$user2" msvc_http_server_requests_total 'route="/users')
pbefore1=$(picks "$port1")
pbefore2=$(picks "$port2")
note "the same request 20 times (printed once; -o /dev/null drops the body; no-cache"
note "makes the bff's cache ask user-service each time instead of answering itself):"
printf '   %s$ for i in $(seq 20); do %s; done%s\n' "$dim" \
  "curl ${tls_curl[*]:+${tls_curl[*]} }-sS -o /dev/null -m 5 -w '%{http_code}\\n' -H 'Cache-Control: no-cache' -H \"Authorization: Bearer \$TOKEN\" $bff/api/users/$user_id" "$off"
gw_fail=0
for ((i = 0; i < 20; i++)); do
  code=$(command curl "${tls_curl[@]}" -sS -o /dev/null -m 5 -w '%{http_code}\n' \
    -H 'Cache-Control: no-cache' -H "Authorization: Bearer $token" "$bff/api/users/$user_id" || true)
  [ "$code" = 200 ] || gw_fail=$((gw_fail + 1))
done
after1=$(metric_sum "$user1" msvc_http_server_requests_total 'route="/users')
after2=$(metric_sum "$user2" msvc_http_server_requests_total 'route="/users')
p1=$(($(picks "$port1") - pbefore1))
p2=$(($(picks "$port2") - pbefore2))
note "The bff's balancer (round robin over the instances the registry lists)"
note "sent $p1 of the 20 to user-service-1 (127.0.0.1:$port1) and $p2 to user-service-2"
note "(127.0.0.1:$port2): the growth of its msvc_lb_picks_total for each endpoint."
note "The instances' own counters (msvc_http_server_requests_total, /users routes)"
note "grew by $((after1 - before1)) and $((after2 - before2)): each request picked is a request served."
note "Round robin alternates, so an even split (10/10) is expected; it can be off by"
note "one or two when a retry or a refreshed endpoint list restarts the rotation."
if [ "$gw_fail" = 0 ]; then ok "all 20 answered 200"; else bad "$gw_fail of 20 failed"; fi
if [ $((p1 + p2)) -ge 20 ]; then ok "the balancer picked an instance for each request"; else bad "the balancer counted $((p1 + p2)) picks for 20 requests"; fi
if [ $((after1 - before1)) -gt 0 ] && [ $((after2 - before2)) -gt 0 ]; then
  ok "both instances served requests"
else
  bad "the load did not reach both instances"
fi

step "order-service stops: the bff serves its last good answers, marked stale"
note "order-service answers orders with Cache-Control: private, max-age=0, stale-if-error=60"
note "and an ETag; the bff keeps them per user and revalidates them on every read."
for ((i = 0; i < ${#pids[@]}; i++)); do
  if [ "${names[$i]}" = order-service ]; then
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
    unset 'pids[i]' 'names[i]'
  fi
done
pids=("${pids[@]}")
names=("${names[@]}")
note "order-service stopped"
call GET "$bff/web/users/$user_id/dashboard" "" "$token"
expect_status 200
expect_match 'the orders are the last good ones' '"total_spent_cents"[[:space:]]*:[[:space:]]*2699'
expect_match 'degraded still names order-service' '"degraded"[[:space:]]*:[[:space:]]*\[[[:space:]]*"order-service"'
stale_headers=$(command curl "${tls_curl[@]}" -sS -m 10 -o /dev/null -D - \
  -H "Authorization: Bearer $token" "$bff/api/orders?user_id=$user_id" |
  tr -d '\r' | grep -i -E '^(HTTP/|x-cache|age|warning):' || true)
note "the gateway's GET /api/orders?user_id=$user_id:"
[ "$quiet" = 1 ] || printf '%s\n' "$stale_headers" | sed 's/^/   -> /'
if printf '%s' "$stale_headers" | grep -qi '^x-cache: STALE' &&
   printf '%s' "$stale_headers" | grep -qi '^warning: 110'; then
  ok "served stale with Age and Warning: 110"
else
  bad "the gateway did not serve a stale answer"
fi
stale_count=$(metric_sum "$bff" msvc_cache_requests_total 'result="stale"')
if [ "${stale_count%.*}" -ge 2 ]; then ok "bff counted $stale_count stale answers (msvc_cache_requests_total)"
else bad "bff counted ${stale_count:-no} stale answers"; fi
start_service order-service "$order_bin" ORDER_DB="$tmp/orders.db" "${verify_env[@]}" \
  "${events_env[@]}"
orders=$scheme://127.0.0.1:$port
for ((n = 0; n < 50; n++)); do
  body=$(command curl "${tls_curl[@]}" -sS -m 5 -H "Authorization: Bearer $token" \
    "$bff/web/users/$user_id/dashboard" || true)
  printf '%s' "$body" | grep -q '"degraded":\[\]' && break
  sleep 0.2
done
if printf '%s' "$body" | grep -q '"degraded":\[\]'; then ok "order-service is back: nothing degraded"
else bad "the dashboard is still degraded after order-service came back"; fi

if [ "$tls" = 1 ]; then
  step "Mutual TLS: no client certificate, or plain HTTP, and nothing is served"
  if command curl -s -o /dev/null -m 5 --cacert "$tmp/tls/ca.crt" "$bff/health"; then
    bad "a client without a certificate was served"
  else
    ok "a client without a certificate is refused"
  fi
  if command curl -s -o /dev/null -m 5 "http://${bff#https://}/health"; then
    bad "plain HTTP was served on a TLS port"
  else
    ok "plain HTTP to a TLS port is refused"
  fi
  hs=$(curl -s -m 5 "$bff/metrics" | grep -E '^msvc_tls_handshakes_total\{[^}]*result="ok"' |
    awk '{ n += $NF } END { print n + 0 }')
  if [ "${hs%.*}" -gt 0 ]; then ok "bff counted $hs TLS handshakes"; else bad "no TLS handshake counted"; fi
fi

# wait_status ID STATUS: polls GET /orders/ID (printed once) until its
# status is STATUS, for up to 15 s; sets $status and $body to the last answer.
wait_status() {
  local n
  call GET "$orders/orders/$1" "" "$token"
  for ((n = 0; n < 150; n++)); do
    [ "$(field status)" = "$2" ] && return 0
    sleep 0.1
    body=$(command curl "${tls_curl[@]}" -sS -m 5 -H "Authorization: Bearer $token" \
      "$orders/orders/$1" || true)
  done
  [ "$quiet" = 1 ] || printf '   -> %s\n' "$(printf '%s' "$body" | head -c 600)"
}

if [ "$events" = on ]; then
  step "The order saga: payment-service authorises the order, order-service confirms it"
  note "order-service's relay published order.created to the ORDERS stream; payment-service"
  note "(durable consumer payment-service) authorised it and published payment.authorized to"
  note "PAYMENTS through its own outbox; order-service consumed that and confirmed the order."
  wait_status "$order_id" confirmed
  expect_field status confirmed
  call GET "$payments/payments?order_id=$order_id" "" "$token"
  expect_status 200
  expect_field status authorized

  step "The compensation: an order above 1000.00 is declined, and cancelled"
  call POST "$orders/orders" '{"items":[{"sku":"PIANO-1","quantity":1,"unit_price_cents":150000}]}' "$token"
  expect_status 201
  expect_field status pending
  big_id=$(field id)
  [ -n "$big_id" ] || big_id=0
  wait_status "$big_id" cancelled
  expect_field status cancelled
  expect_field reason amount_limit
  call GET "$payments/payments?order_id=$big_id" "" "$token"
  expect_status 200
  expect_field status declined
  expect_field reason amount_limit
  call GET "$bff/mobile/users/$user_id/dashboard" "" "$token"
  expect_status 200
  expect_match 'the mobile dashboard shows both statuses' '"status":"cancelled".*"status":"confirmed"'
fi

step "Scrape /metrics of every service (Prometheus text format)"
metric_targets=("user-service-1 $user1" "user-service-2 $user2" "order-service $orders" "bff $bff")
[ -n "$bff_grpc" ] && metric_targets+=("bff-2 $bff_grpc")
[ "$events" = on ] && metric_targets+=("payment-service $payments")
for pair in "${metric_targets[@]}"; do
  label=${pair%% *}
  url=${pair#* }
  ctype=$(curl -s -m 5 -o "$tmp/metrics.txt" -w '%{content_type}' "$url/metrics" || true)
  series=$(grep -vc '^#' "$tmp/metrics.txt" || true)
  note "$label: $series samples, for example:"
  grep -E '^(msvc_http_server_requests_total|msvc_http_client_requests_total|process_resident_memory_bytes)' \
    "$tmp/metrics.txt" | head -n 3 | sed 's/^/     /' || true
  case $ctype in
  text/plain*version=0.0.4*) ok "$label: Prometheus text format" ;;
  *) bad "$label: /metrics Content-Type is '$ctype'" ;;
  esac
done

# ---- the end -------------------------------------------------------------

echo
if [ "$failed" = 0 ]; then
  printf '%sall %d checks passed%s\n' "$green" "$passed" "$off"
else
  printf '%s%d of %d checks failed:%s\n' "$red" "$failed" "$((passed + failed))" "$off"
  printf '  %s\n' "${failures[@]}"
fi

if [ "$mode" = smoke ]; then
  cleanup
  [ "$failed" = 0 ] && exit 0
  exit 1
fi

serving=1
curl_hint=curl
[ "$tls" = 1 ] && curl_hint="curl ${tls_curl[*]}"
if [ "$keep_logs" = 1 ]; then
  logs_note="kept when the demo ends"
else
  logs_note="removed when the demo ends; run with --keep-logs to keep them"
fi
cat <<EOF

The system stays up until Ctrl-C. Try, for example (the token is valid for 15 minutes):
  TOKEN=$token
  $curl_hint -H "Authorization: Bearer \$TOKEN" $bff/api/users/$user_id
  $curl_hint -H "Authorization: Bearer \$TOKEN" $bff/web/users/$user_id/dashboard
  $curl_hint $bff/metrics

  user-service   $user1  $user2
  order-service  $orders
  bff            $bff${bff_grpc:+
  bff-2 (gRPC)   $bff_grpc}${payments:+
  payment-service $payments
  broker         $events_uri}
  logs           $tmp/logs/  ($logs_note)

Admin pages of each service (loopback only; ?format=json gives JSON):
EOF
for u in "${admin_urls[@]}"; do printf '  %s\n' "$u"; done
while :; do
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "demo: ${names[$i]} exited; stopping the rest" >&2
      exit 1
    fi
  done
  sleep 1
done
