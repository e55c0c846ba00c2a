#!/bin/sh
# Creates the certificates the TLS tests use, in directory $1:
#   ca.crt            test CA (ECDSA P-256) that signs everything below
#   server.{crt,key}  ECDSA P-256, DNS:localhost and IP:127.0.0.1
#   server-rsa.*      the same names with an RSA 2048 key
#   server2.*         another server certificate (reload tests)
#   wrong.*           a server certificate for DNS:wrong.example only
#   expired.*         a server certificate that expired in 2020
#   client.{crt,key}  client certificate, URI:spiffe://example.org/ns/test/sa/client
#   other-ca.crt, other-client.*  a client certificate from another CA
#   bad.pem           not PEM at all
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"

ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # name subject
  ec_key "$1.key"
  openssl req -x509 -new -key "$1.key" -out "$1.crt" -subj "$2" -days 3650 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}

# leaf name ca subject san eku [rsa]
leaf() {
  if [ "${6:-}" = rsa ]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.key" 2>/dev/null
  else
    ec_key "$1.key"
  fi
  openssl req -new -key "$1.key" -out "$1.csr" -subj "$3"
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\n' "$4" "$5" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial \
    -out "$1.crt" -days 825 -extfile "$1.ext" 2>/dev/null
}

ca ca "/CN=libmsvc test CA"
ca other-ca "/CN=other test CA"
leaf server ca "/CN=localhost" "DNS:localhost,IP:127.0.0.1" serverAuth
leaf server-rsa ca "/CN=localhost" "DNS:localhost,IP:127.0.0.1" serverAuth rsa
leaf server2 ca "/CN=localhost/O=second" "DNS:localhost,IP:127.0.0.1" serverAuth
leaf wrong ca "/CN=wrong.example" "DNS:wrong.example" serverAuth
leaf client ca "/CN=client/O=libmsvc tests" \
  "URI:spiffe://example.org/ns/test/sa/client,DNS:client.example" clientAuth
leaf other-client other-ca "/CN=intruder" "DNS:intruder.example" clientAuth

# The expired certificate needs explicit dates, which only `openssl ca` sets.
mkdir -p ca-db
: > ca-db/index.txt
cat > ca-db/ca.cnf <<CNF
[ca]
default_ca = test
[test]
database = ca-db/index.txt
new_certs_dir = ca-db
serial = ca-db/serial
default_md = sha256
policy = any
copy_extensions = copy
[any]
commonName = supplied
CNF
echo 1000 > ca-db/serial
ec_key expired.key
openssl req -new -key expired.key -out expired.csr -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
openssl ca -batch -config ca-db/ca.cnf -cert ca.crt -keyfile ca.key -in expired.csr \
  -out expired.crt -startdate 20190101000000Z -enddate 20200101000000Z -notext 2>/dev/null

echo "this is not a certificate" > bad.pem
rm -f ./*.csr ./*.ext
