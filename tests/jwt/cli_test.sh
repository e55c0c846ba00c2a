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

# https is fetched (over TLS, certificate verified); nothing listens here.
err=$("$jwt" verify --jwks https://127.0.0.1:1/jwks.json "$tok" 2>&1)
check jwks_https_unreachable 2 $?
case $err in *"https://127.0.0.1:1/jwks.json: "*) ;; *) echo "FAIL url message: $err"; failures=$((failures + 1)) ;; esac
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

# keygen and jwks: a key pair, its JWK Set, and tokens verified with it.
work=$(mktemp -d "${TMPDIR:-/tmp}/msvc-jwt-cli.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL $1"; failures=$((failures + 1)); }

kid=$("$jwt" keygen --out "$work/es.pem" --pub "$work/es.pub.pem")
check keygen_es256 0 $?
perm=$(stat -c %a "$work/es.pem")
[ "$perm" = 600 ] || fail "keygen private key mode $perm, expected 600"
[ ${#kid} = 43 ] || fail "keygen kid '$kid' is not a 43-character thumbprint"
grep -q "PRIVATE KEY" "$work/es.pem" || fail "keygen: no private key PEM"
grep -q "BEGIN PUBLIC KEY" "$work/es.pub.pem" || fail "keygen: no public key PEM"
"$jwt" keygen --out "$work/es.pem" 2>"$work/err"
check keygen_never_overwrites 2 $?
grep -q "remove it first" "$work/err" || fail "keygen overwrite message: $(cat "$work/err")"

"$jwt" jwks "$work/es.pem" >"$work/jwks.json"
check jwks_from_private_pem 0 $?
"$jwt" jwks "$work/es.pub.pem" >"$work/jwks-pub.json"
check jwks_from_public_pem 0 $?
cmp -s "$work/jwks.json" "$work/jwks-pub.json" || fail "jwks: the private and public PEM give different sets"
grep -q "\"kid\":\"$kid\"" "$work/jwks.json" || fail "jwks kid is not keygen's: $(cat "$work/jwks.json")"
grep -q '"alg":"ES256"' "$work/jwks.json" || fail "jwks: no alg ES256"
grep -q '"d"' "$work/jwks.json" && fail "jwks publishes private material"
# The kid is the RFC 7638 thumbprint: SHA-256 over the required members in
# lexicographic order, base64url without padding.
x=$(sed 's/.*"x":"\([^"]*\)".*/\1/' "$work/jwks.json")
y=$(sed 's/.*"y":"\([^"]*\)".*/\1/' "$work/jwks.json")
want=$(printf '{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}' "$x" "$y" |
  openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '=')
[ "$want" = "$kid" ] || fail "kid $kid is not the RFC 7638 thumbprint $want"

tok=$("$jwt" sign --alg ES256 --key "$work/es.pem" --kid "$kid" '{"sub":"7","exp":4102444800}')
check sign_with_new_key 0 $?
out=$("$jwt" verify --jwks "$work/jwks.json" "$tok")
check verify_with_printed_jwks 0 $?
[ "$out" = '{"sub":"7","exp":4102444800}' ] || fail "verify with the printed set: $out"
"$jwt" verify --jwks "$fx/jwks.json" "$tok" 2>/dev/null
check new_key_unknown_elsewhere 1 $?

"$jwt" keygen --alg RS256 --out "$work/rs.pem" >/dev/null
check keygen_rs256 0 $?
"$jwt" keygen --alg ES384 --out "$work/es384.pem" >/dev/null
check keygen_es384 0 $?
"$jwt" jwks --alg RS256 "$work/rs.pem" "$work/es.pem" >/dev/null 2>&1
check jwks_alg_mismatch 2 $?
"$jwt" jwks "$work/rs.pem" "$work/es384.pem" "$work/es.pem" >"$work/three.json"
check jwks_several_keys 0 $?
[ "$(grep -o '"kid"' "$work/three.json" | wc -l)" = 3 ] || fail "jwks: three keys expected: $(cat "$work/three.json")"
rtok=$("$jwt" sign --alg RS256 --key "$work/rs.pem" \
  --kid "$(sed 's/.*"kid":"\([^"]*\)".*/\1/' <<EOF_JWK
$("$jwt" jwks "$work/rs.pem")
EOF_JWK
)" '{"sub":"8"}')
"$jwt" verify --jwks "$work/three.json" "$rtok" >/dev/null
check verify_rs256_in_rotated_set 0 $?
"$jwt" jwks --kid mine "$work/es.pem" | grep -q '"kid":"mine"'
check jwks_explicit_kid 0 $?

"$jwt" keygen --alg HS256 --out "$work/hs" 2>/dev/null
check keygen_refuses_hmac 2 $?
"$jwt" keygen --alg ES256 --bits 4096 --out "$work/x.pem" 2>/dev/null
check keygen_bits_only_for_rsa 2 $?
"$jwt" keygen --alg RS256 --bits 1024 --out "$work/x.pem" 2>/dev/null
check keygen_bits_too_small 2 $?
"$jwt" keygen 2>/dev/null
check keygen_needs_out 2 $?
"$jwt" keygen --out "$work/nodir/k.pem" 2>/dev/null
check keygen_unwritable 2 $?
"$jwt" jwks 2>/dev/null
check jwks_needs_a_file 2 $?
"$jwt" jwks "$fx/hs256.secret" 2>/dev/null
check jwks_not_a_pem 2 $?
"$jwt" jwks "$work/missing.pem" 2>/dev/null
check jwks_missing_file 2 $?

[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
