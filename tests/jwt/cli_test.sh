#!/bin/sh
# Drives the msvc-jwt tool from outside: exit codes, output and messages.
# usage: cli_test.sh MSVC_JWT FIXTURES_DIR
set -u
jwt=$1
fx=$2
failures=0

check() { # check NAME EXPECTED_RC ACTUAL_RC
  if [ "$2" != "$3" ]; then
    echo "FAIL $1: exit $3, expected $2"
    failures=$((failures + 1))
  else
    echo "ok   $1"
  fi
}

tok=$("$jwt" sign --alg ES256 --key "$fx/ec256-private.pem" --kid ec-256 \
  '{"sub":"1","iss":"me","aud":["x","y"],"exp":1700000600}')
check sign 0 $?

out=$("$jwt" verify --jwks "$fx/jwks.json" --now 1700000000 --iss me --aud y "$tok")
check verify_ok 0 $?
[ "$out" = '{"sub":"1","iss":"me","aud":["x","y"],"exp":1700000600}' ] || {
  echo "FAIL verify_ok output: $out"; failures=$((failures + 1)); }

err=$("$jwt" verify --jwks "$fx/jwks.json" --now 1700009000 "$tok" 2>&1 >/dev/null)
check verify_expired 1 $?
case $err in expired:*) ;; *) echo "FAIL expired message: $err"; failures=$((failures + 1)) ;; esac

"$jwt" verify --jwks "$fx/jwks.json" --now 1700000000 --aud z "$tok" 2>/dev/null
check verify_bad_audience 1 $?
"$jwt" verify --jwks "$fx/jwks.json" --now 1700000000 --alg RS256 "$tok" 2>/dev/null
check verify_alg_not_allowed 1 $?
"$jwt" verify --key "$fx/ec256-public.pem" --now 1700000000 "$tok" >/dev/null
check verify_with_pem 0 $?
echo "$tok" | "$jwt" verify --key "$fx/ec256-public.pem" --now 1700000000 - >/dev/null
check verify_stdin 0 $?

err=$("$jwt" verify --jwks https://127.0.0.1/jwks.json "$tok" 2>&1)
check jwks_https_not_supported 2 $?
case $err in *"not supported"*|*"cannot fetch"*) ;; *) echo "FAIL url message: $err"; failures=$((failures + 1)) ;; esac
"$jwt" verify --jwks http://127.0.0.1:1/jwks.json "$tok" 2>/dev/null
check jwks_url_unreachable 2 $?

hs=$("$jwt" sign --alg HS256 --secret-file "$fx/hs256.secret" '{"a":1}')
check sign_hs256 0 $?
"$jwt" verify --secret-file "$fx/hs256.secret" "$hs" >/dev/null
check verify_hs256 0 $?
"$jwt" verify --key "$fx/rsa-public.pem" "$hs" 2>/dev/null
check hs256_against_rsa_key 1 $?

"$jwt" sign --alg ES256 --key "$fx/ec256-public.pem" '{}' 2>/dev/null
check sign_with_public_key 2 $?
"$jwt" sign --alg HS256 --secret-file "$fx/hs256.secret" '[1]' 2>/dev/null
check sign_non_object 2 $?
"$jwt" verify "$tok" 2>/dev/null
check verify_without_keys 2 $?
"$jwt" verify --leeway nope "$tok" 2>/dev/null
check bad_leeway 2 $?
"$jwt" frobnicate x 2>/dev/null
check unknown_command 2 $?
"$jwt" --help >/dev/null
check help 0 $?

[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
