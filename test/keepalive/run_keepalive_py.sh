#!/bin/sh
# Client keepalive against Python grpcio (gRPC A8; doc/PROTOCOL.md 17.7).
#
# 1. Default grpcio server, our channel with keepalive 10 s and the default
#    permit_without_calls off, idle for 25 s: no ping goes out while no call
#    is open, so the server never sends GOAWAY (the channel never leaves
#    READY) and the next call succeeds on the same connection.
# 2. A server that enforces min_ping_interval_without_data_ms 60 s and
#    max_ping_strikes 1, our channel pinging while idle
#    (permit_without_calls on): the server sends GOAWAY ENHANCE_YOUR_CALM
#    "too_many_pings"; the channel reconnects with a doubled interval and
#    the call after it succeeds (it backs off instead of dying): exactly one
#    GOAWAY in 70 s (without the doubling a second comes at ~60 s).
#
# Needs python3 with grpcio (a missing one is a FAIL; TRI_ALLOW_SKIP=1
# turns it into a skip, exit 77).  Environment: top_builddir (set by make
# check), PYTHON (default /usr/bin/python3), KA_IDLE_S (25), KA_STRICT_S
# (70).  Both cases run at the same time.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${top_builddir:=$here/../..}"
PYTHON=${PYTHON:-/usr/bin/python3}
client="$top_builddir/test/keepalive/ka_client"
log=$(mktemp -d "${TMPDIR:-/tmp}/tri-ka.XXXXXX")
pids=
cleanup() { [ -n "$pids" ] && kill $pids 2>/dev/null; wait 2>/dev/null; rm -rf "$log"; }
trap cleanup EXIT INT TERM

if ! "$PYTHON" -c 'import grpc' 2>/dev/null; then
  echo "FAIL: $PYTHON has no grpcio (apt-get install python3-grpcio)"
  [ "${TRI_ALLOW_SKIP:-0}" = 1 ] && exit 77
  exit 1
fi

# start NAME [ARGS]: a python server; sets port_NAME and pid_NAME
start() {
  name=$1; shift
  PYTHONDONTWRITEBYTECODE=1 "$PYTHON" "$here/py_ka_server.py" "$@" \
    >"$log/$name.srv" 2>"$log/$name.err" &
  eval "pid_$name=$!"
  pids="$pids $!"
  i=0
  while ! grep -q listening "$log/$name.srv" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 100 ]; then echo "FAIL: python server did not start"; cat "$log/$name.err"; exit 1; fi
    sleep 0.1
  done
  eval "port_$name=\$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\).*/\1/p' \"\$log/\$name.srv\")"
}

pids=
fail=0
start plain
start strict --strict
# both at once: the strict case needs 70 s of pinging (GOAWAY after the
# third ping at ~30 s; with the interval doubled to 20 s the next would
# come at ~90 s, with it kept at 10 s at ~60 s)
"$client" "127.0.0.1:$port_plain" 10000 0 "${KA_IDLE_S:-25}" >"$log/c1.out" 2>&1 &
c1=$!
"$client" "127.0.0.1:$port_strict" 10000 1 "${KA_STRICT_S:-70}" >"$log/c2.out" 2>&1
rc2=$?
wait $c1
rc1=$?
kill $pids 2>/dev/null
wait 2>/dev/null
pids=

cat "$log/c1.out"
if [ $rc1 -ne 0 ] || ! grep -q '^left_ready=0$' "$log/c1.out"; then
  echo "FAIL keepalive default grpcio: idle channel left READY or a call failed"
  fail=1
else
  echo "PASS keepalive default grpcio: idle ${KA_IDLE_S:-25} s with keepalive 10 s, never GOAWAY-ed"
fi
cat "$log/c2.out"
n=$(sed -n 's/^left_ready=//p' "$log/c2.out")
if [ $rc2 -ne 0 ] || [ "$n" != 1 ]; then
  echo "FAIL keepalive strict grpcio: expected exactly one too_many_pings GOAWAY in ${KA_STRICT_S:-70} s (interval doubled after it) and working calls; got ${n:-none}"
  fail=1
else
  echo "PASS keepalive strict grpcio: one GOAWAY too_many_pings, reconnected with a doubled interval, calls succeed"
fi
exit $fail
