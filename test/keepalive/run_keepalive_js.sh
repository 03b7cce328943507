#!/bin/sh
# Client keepalive against a grpc-js server (@grpc/grpc-js 1.14.7, pinned
# by test/keepalive/js/package-lock.json; gRPC A8; doc/PROTOCOL.md 17.7).
# The Node half of run_keepalive_py.sh; both cases run at the same time
# against one default grpc-js server, which prints "session" per
# connection and "ping MS ..." per PING it receives (js_ka_server.js).
#
# 1. Our channel with keepalive 10 s and the default permit_without_calls
#    off, idle for 25 s: no PING reaches the server while no call is open,
#    it never sends GOAWAY
#    (the channel never leaves READY), one connection, and the next call
#    succeeds on it.
# 2. The same channel with permit_without_calls on: it pings the idle
#    connection every 10 s (at least 2 PINGs in 25 s), grpc-js acks them
#    (the channel never leaves READY), one connection, the next call
#    succeeds.
# grpc-js has no server option that enforces a minimum ping interval
# (Node's http2 module answers PINGs; grpc.http2.min_ping_interval_
# without_data_ms / max_ping_strikes do not exist there), so the
# too_many_pings back-off case of run_keepalive_py.sh has no grpc-js
# counterpart.
#
# The server is installed once into ${TRI_PEER_DIR:-$HOME/.cache/
# libtriplestream-peers}/grpcjs by test/peers/build-peers.sh --only=grpcjs
# (npm).  Missing node/npm or a failed install is a FAIL; TRI_ALLOW_SKIP=1
# turns it into a skip (77).  Environment: top_builddir (set by make
# check), KA_IDLE_S (25).
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${top_builddir:=$here/../..}"
client="$top_builddir/test/keepalive/ka_client"
peer_dir=${TRI_PEER_DIR:-${HOME:-/tmp}/.cache/libtriplestream-peers}
idle=${KA_IDLE_S:-25}
log=$(mktemp -d "${TMPDIR:-/tmp}/tri-kajs.XXXXXX") || exit 1
pids=
cleanup() { [ -n "$pids" ] && kill $pids 2>/dev/null; wait 2>/dev/null; rm -rf "$log"; }
trap cleanup EXIT
trap 'exit 1' INT TERM

if ! sh "$here/../peers/build-peers.sh" --only=grpcjs "$peer_dir" >"$log/build.out" 2>&1; then
  echo "FAIL: cannot install the grpc-js server (node, npm): $(tail -n 5 "$log/build.out" | tr '\n' ' ')"
  [ "${TRI_ALLOW_SKIP:-0}" = 1 ] && exit 77
  exit 1
fi

# start NAME: a grpc-js server; sets port_NAME
start() {
  name=$1
  node "$peer_dir/grpcjs/js_ka_server.js" >"$log/$name.srv" 2>"$log/$name.err" &
  pids="$pids $!"
  i=0
  while ! grep -q listening "$log/$name.srv" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 150 ]; then echo "FAIL: grpc-js server did not start"; cat "$log/$name.err"; exit 1; fi
    sleep 0.1
  done
  eval "port_$name=\$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\).*/\1/p' \"\$log/\$name.srv\")"
}

fail=0
start plain
start ping
"$client" "127.0.0.1:$port_plain" 10000 0 "$idle" >"$log/c1.out" 2>&1 &
c1=$!
"$client" "127.0.0.1:$port_ping" 10000 1 "$idle" >"$log/c2.out" 2>&1
rc2=$?
wait $c1
rc1=$?
kill $pids 2>/dev/null
wait 2>/dev/null
pids=

# check CASE RC CLIENT_OUT SERVER_OUT IDLE_PINGS: IDLE_PINGS PINGs came
# while the channel was idle (before the second call, at idle s; the
# call's own PING when it opens a connection silent for more than 10 s,
# as grpc-java's KeepAliveManager does too, is not counted).
check() {
  cut=$(( (idle - 2) * 1000 ))
  p=$(awk -v c=$cut '$1 == "ping" && $2 < c' "$4" | wc -l)
  s=$(grep -c '^session$' "$4")
  cat "$3"
  grep '^ping' "$4"
  echo "server: sessions=$s pings_while_idle=$p"
  if [ "$2" -ne 0 ] || ! grep -q '^left_ready=0$' "$3" || [ "$s" != 1 ] ||
     [ "$p" != "$5" ]; then
    echo "FAIL keepalive grpc-js $1: expected left_ready=0, working calls, 1 connection, $5 PINGs while idle"
    fail=1
  else
    echo "PASS keepalive grpc-js $1"
  fi
}
check "default (idle $idle s, keepalive 10 s, no PING without calls)" \
  $rc1 "$log/c1.out" "$log/plain.srv" 0
check "permit_without_calls (idle $idle s, PINGs every 10 s acked)" \
  $rc2 "$log/c2.out" "$log/ping.srv" $((idle / 10))
exit $fail
