#!/bin/sh
# The gRPC interop matrix over TLS and over mutual TLS (run_interop.sh
# with INTEROP_TLS=tls, then =mtls), against Python grpcio
# (grpc.ssl_channel_credentials / grpc.ssl_server_credentials) in both
# directions and between our own client and server, with certificates the
# test makes itself (test/tls/gen-certs.sh, the openssl command).  Then
# two refusals: a client without a certificate is turned away by each
# mutual-TLS server (ours and grpcio's).
#
# One line per case ("PASS tls tri->py large_unary"), then
# "N passed, N failed".  Exit status 1 on any failure; a missing openssl
# command or grpcio is a failure, not a skip.  Environment as
# run_interop.sh (INTEROP_CASES, INTEROP_DIRECTIONS, PYTHON, ...).

set -u

here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=$(cd "$here/../.." && pwd)
: "${top_builddir:=$top_srcdir}"
top_builddir=$(cd "$top_builddir" && pwd)
export top_builddir
PYTHON=${PYTHON:-/usr/bin/python3}
OPENSSL=${OPENSSL:-openssl}
export OPENSSL

work=$(mktemp -d "${TMPDIR:-/tmp}/tri-interop-tls.XXXXXX") || exit 1
srv_pid=
cleanup() {
  if [ -n "$srv_pid" ]; then
    kill -TERM "$srv_pid" 2>/dev/null
    i=0
    while kill -0 "$srv_pid" 2>/dev/null && [ $i -lt 50 ]; do
      sleep 0.1; i=$((i + 1))
    done
    kill -KILL "$srv_pid" 2>/dev/null
    wait "$srv_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

passed=0
failed=0

fail_hard() {
  echo "FAIL interop-tls: $*"
  echo "$passed passed, $((failed + 1)) failed"
  exit 1
}

command -v "$OPENSSL" >/dev/null 2>&1 \
  || fail_hard "the $OPENSSL command is needed to make the test certificates (Debian: openssl)"
sh "$top_srcdir/test/tls/gen-certs.sh" "$work/certs" 2>"$work/certs.err" \
  || fail_hard "cannot make the certificates: $(tail -n 3 "$work/certs.err" | tr '\n' ' ')"

for mode in tls mtls; do
  INTEROP_TLS=$mode INTEROP_CERTS=$work/certs sh "$here/run_interop.sh" \
    >"$work/$mode.out" 2>&1
  # Everything but the summary line goes through.
  grep -v -E '^[0-9]+ passed, [0-9]+ failed' "$work/$mode.out"
  sum=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$work/$mode.out" | tail -n 1)
  if [ -z "$sum" ]; then
    echo "FAIL $mode: run_interop.sh printed no summary"
    failed=$((failed + 1))
    continue
  fi
  p=$(echo "$sum" | sed 's/^\([0-9]*\) passed.*/\1/')
  f=$(echo "$sum" | sed 's/^[0-9]* passed, \([0-9]*\) failed.*/\1/')
  passed=$((passed + p))
  failed=$((failed + f))
done

# --- refusals: a mutual-TLS server turns away a client without a
# certificate; the client reports UNAVAILABLE ------------------------------
certs=$work/certs
start() { # name cmd...
  name=$1; shift
  "$@" --port=0 --use_tls --tls_cert_file="$certs/server.pem" \
    --tls_key_file="$certs/server.key" --tls_client_ca_file="$certs/ca.pem" \
    >"$work/$name.out" 2>"$work/$name.err" &
  srv_pid=$!
  port=
  i=0
  while [ $i -lt 200 ]; do
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$work/$name.out")
    [ -n "$port" ] && return 0
    kill -0 "$srv_pid" 2>/dev/null || break
    sleep 0.1; i=$((i + 1))
  done
  return 1
}
stop() {
  kill -TERM "$srv_pid" 2>/dev/null
  wait "$srv_pid" 2>/dev/null
  srv_pid=
}
refusal() { # label client-cmd...
  label=$1; shift
  timeout -k 5 60 "$@" --server_host=127.0.0.1 --server_port="$port" \
    --test_case=empty_unary --use_tls=true --tls_ca_file="$certs/ca.pem" \
    >"$work/ref.out" 2>"$work/ref.err"
  rc=$?
  if [ $rc -ne 0 ] && grep -q -i 'unavailable' "$work/ref.err"; then
    echo "PASS $label: refused ($(grep -m 1 '^FAIL' "$work/ref.err" | sed 's/^FAIL [^:]*: //' | cut -c1-150))"
    passed=$((passed + 1))
  else
    echo "FAIL $label: exit $rc, want a failure with UNAVAILABLE: $(tail -n 2 "$work/ref.err" | tr '\n' ' ')"
    failed=$((failed + 1))
  fi
}
if start py-mtls "$PYTHON" "$here/py_server.py"; then
  refusal "mtls-refused tri->py (no client certificate)" \
    "$top_builddir/tools/tri-interop-client"
  stop
else
  echo "FAIL mtls-refused tri->py: py_server.py did not start: $(tail -n 2 "$work/py-mtls.err" | tr '\n' ' ')"
  failed=$((failed + 1)); stop
fi
if start tri-mtls "$top_builddir/tools/tri-interop-server"; then
  refusal "mtls-refused py->tri (no client certificate)" \
    "$PYTHON" "$here/py_client.py"
  stop
else
  echo "FAIL mtls-refused py->tri: tri-interop-server did not start: $(tail -n 2 "$work/tri-mtls.err" | tr '\n' ' ')"
  failed=$((failed + 1)); stop
fi

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
