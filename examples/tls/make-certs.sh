#!/bin/sh
# The README's certificates for the TLS example: a CA, a server
# certificate for localhost and 127.0.0.1, a client certificate; into the
# directory $1 (default: certs).
set -e
mkdir -p "${1:-certs}" && cd "${1:-certs}"
EC="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365"
openssl req -x509 $EC -subj "/CN=demo CA" -keyout ca.key -out ca.pem
openssl req -x509 $EC -subj "/CN=localhost" -CA ca.pem -CAkey ca.key \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -addext "basicConstraints=critical,CA:FALSE" -keyout server.key -out server.pem
openssl req -x509 $EC -subj "/CN=demo-client" -CA ca.pem -CAkey ca.key \
  -addext "basicConstraints=critical,CA:FALSE" -keyout client.key -out client.pem
