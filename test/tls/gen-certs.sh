#!/bin/sh
# Make the certificates of the TLS tests in directory $1 (created), with
# the openssl command line and nothing else (EC P-256 keys: fast to make).
#
#   ca.pem ca.key            "tri test CA"
#   server.pem server.key    CN=localhost; SANs DNS:localhost, IP:127.0.0.1,
#                            IP:::1, DNS:*.test.invalid
#   sni.pem sni.key          CN=sni.test.invalid; SAN DNS:sni.test.invalid
#   reloaded.pem .key        CN=reloaded; the same SANs as server.pem
#   client.pem client.key    CN=tri-client,O=triplestream tests; SANs
#                            DNS:client.test.invalid,
#                            URI:spiffe://test.invalid/client
#   expired.pem .key         as server.pem, valid only in January 2020
#   other-ca.pem .key        another CA ("tri other CA")
#   other.pem other.key      as server.pem, issued by the other CA
#   other-client.pem .key    a client certificate from the other CA
#
# Exit status 0 when every file is there; otherwise the failing command's
# output on stderr and status 1.  OPENSSL overrides the command.
set -u
dir=${1:?usage: gen-certs.sh DIR}
OPENSSL=${OPENSSL:-openssl}
mkdir -p "$dir" || exit 1
cd "$dir" || exit 1

run() {
  if ! out=$("$@" 2>&1); then
    echo "gen-certs.sh: failed: $*" >&2
    echo "$out" >&2
    exit 1
  fi
}

# A configuration of our own, so the system's openssl.cnf cannot change
# the result.
cat > x509.cnf <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1, DNS:*.test.invalid
[sni]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:sni.test.invalid
[cnonly]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
[client]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = DNS:client.test.invalid, URI:spiffe://test.invalid/client
EOF

key() { run "$OPENSSL" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"; }

ca() { # name subject
  key "$1"
  run "$OPENSSL" req -config x509.cnf -x509 -new -key "$1.key" -subj "$2" \
    -days 3650 -sha256 -extensions v3_ca -out "$1.pem"
}

leaf() { # name subject ca extensions
  key "$1"
  run "$OPENSSL" req -config x509.cnf -new -key "$1.key" -subj "$2" -out "$1.csr"
  run "$OPENSSL" x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" \
    -CAcreateserial -days 3650 -sha256 -extfile x509.cnf -extensions "$4" \
    -out "$1.pem"
}

ca ca "/CN=tri test CA"
ca other-ca "/CN=tri other CA"
leaf server "/CN=localhost" ca server
leaf sni "/CN=sni.test.invalid" ca sni
leaf reloaded "/CN=reloaded" ca server
leaf client "/O=triplestream tests/CN=tri-client" ca client
leaf other "/CN=localhost" other-ca server
leaf other-client "/CN=other-client" other-ca client
# A subject CN but no SAN: must never pass as "localhost" (RFC 6125 6.4.4).
leaf cnonly "/CN=localhost" ca cnonly
# An encrypted private key: refused with a message, never a prompt.
run "$OPENSSL" pkcs8 -topk8 -in server.key -out server-enc.key \
  -passout pass:secret

# Expired: `openssl x509 -req` cannot start in the past, `openssl ca` can
# (-startdate/-enddate), with a minimal CA database.
mkdir -p cadb/new
: > cadb/index.txt
echo 1000 > cadb/serial
cat > ca.cnf <<EOF
[ca]
default_ca = tca
[tca]
dir = cadb
database = cadb/index.txt
new_certs_dir = cadb/new
serial = cadb/serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
EOF
key expired
run "$OPENSSL" req -config x509.cnf -new -key expired.key -subj "/CN=localhost" -out expired.csr
run "$OPENSSL" ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key \
  -in expired.csr -startdate 20200101000000Z -enddate 20200201000000Z \
  -extfile x509.cnf -extensions server -notext -out expired.pem

for f in ca server sni reloaded client expired other-ca other other-client; do
  [ -s "$f.pem" ] && [ -s "$f.key" ] || { echo "gen-certs.sh: $f.pem or $f.key missing" >&2; exit 1; }
done
exit 0
