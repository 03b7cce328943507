#!/bin/sh
# Run the bidi echo demo: start echo_server on a free loopback port, run
# echo_client in its three modes (echo, cancel, deadline), check the exit
# codes and what the server reported, stop the server.
#
#   run-demo.sh BUILDDIR     BUILDDIR holds echo/echo_server and
#                            echo/echo_client (default: .)
#
# Exits non-zero on any failure.  Every wait is bounded.
set -u

bindir=${1:-.}
server=$bindir/echo/echo_server
client=$bindir/echo/echo_client

for p in "$server" "$client"; do
  if [ ! -x "$p" ]; then
    echo "run-demo: missing $p (build the examples first)" >&2
    exit 1
  fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tri-echo-demo.XXXXXX") || exit 1
spid=

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  if [ -n "$spid" ] && kill -0 "$spid" 2>/dev/null; then
    kill -KILL "$spid" 2>/dev/null
    wait "$spid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# Sub-second sleeps are not POSIX; fall back to whole seconds.
nap() {
  sleep 0.1 2>/dev/null || sleep 1
}

# Run a command with a time limit when timeout(1) exists.
bounded() {
  if command -v timeout >/dev/null 2>&1; then
    timeout 60 "$@"
  else
    "$@"
  fi
}

fail() {
  echo "run-demo: FAIL: $*" >&2
  echo "---- server output ----" >&2
  cat "$tmp/server.out" >&2 2>/dev/null
  exit 1
}

# Wait (at most ~10 s) until the server output matches a pattern.
wait_server_line() {
  i=0
  while [ $i -lt 100 ]; do
    if grep -q "$1" "$tmp/server.out" 2>/dev/null; then
      return 0
    fi
    i=$((i + 1))
    nap
  done
  return 1
}

"$server" --port 0 >"$tmp/server.out" 2>&1 &
spid=$!

port=
i=0
while [ $i -lt 100 ]; do
  port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' \
    "$tmp/server.out" 2>/dev/null)
  [ -n "$port" ] && break
  kill -0 "$spid" 2>/dev/null || fail "server exited before listening"
  i=$((i + 1))
  nap
done
[ -n "$port" ] || fail "server did not print its port within 10 s"
echo "run-demo: server pid $spid listening on 127.0.0.1:$port"

rc=0
for mode in echo cancel deadline; do
  echo "run-demo: ---- client --mode=$mode ----"
  bounded "$client" --port "$port" --mode="$mode" >"$tmp/client-$mode.out" 2>&1
  crc=$?
  cat "$tmp/client-$mode.out"
  if [ $crc -ne 0 ]; then
    echo "run-demo: client --mode=$mode exited with $crc" >&2
    rc=1
  fi
done

grep -q 'recv returned TRI_EOF' "$tmp/client-echo.out" ||
  { echo "run-demo: echo mode did not end with TRI_EOF" >&2; rc=1; }
grep -q 'final status TRI_OK' "$tmp/client-echo.out" ||
  { echo "run-demo: echo mode did not end with TRI_OK" >&2; rc=1; }
grep -q 'recv returned TRI_CANCELLED after [0-9]* us' "$tmp/client-cancel.out" ||
  { echo "run-demo: cancel mode did not report TRI_CANCELLED" >&2; rc=1; }
grep -q 'recv returned TRI_DEADLINE_EXCEEDED' "$tmp/client-deadline.out" ||
  { echo "run-demo: deadline mode did not report TRI_DEADLINE_EXCEEDED" >&2; rc=1; }

# What the server's handler saw for each call.
wait_server_line 'ended: client half-closed' ||
  { echo "run-demo: server did not see the half-close" >&2; rc=1; }
wait_server_line 'ended: TRI_CANCELLED' ||
  { echo "run-demo: server handler did not see the cancel" >&2; rc=1; }
# The deadline reaches the handler as its own deadline or as the client's
# RST_STREAM(CANCEL): either ends that call; three calls must have ended.
i=0
while [ $i -lt 100 ]; do
  [ "$(grep -c 'ended' "$tmp/server.out")" -ge 3 ] && break
  i=$((i + 1))
  nap
done
[ "$(grep -c 'ended' "$tmp/server.out")" -ge 3 ] ||
  { echo "run-demo: server did not report the end of all three calls" >&2; rc=1; }

# Graceful stop: SIGTERM, then at most ~10 s.
kill -TERM "$spid" 2>/dev/null
i=0
while kill -0 "$spid" 2>/dev/null && [ $i -lt 100 ]; do
  i=$((i + 1))
  nap
done
if kill -0 "$spid" 2>/dev/null; then
  echo "run-demo: server ignored SIGTERM for 10 s" >&2
  rc=1
else
  wait "$spid"
  src=$?
  spid=
  if [ $src -ne 0 ]; then
    echo "run-demo: server exited with $src" >&2
    rc=1
  fi
fi

echo "---- server output ----"
cat "$tmp/server.out"
if [ $rc -eq 0 ]; then
  echo "run-demo: PASS"
else
  echo "run-demo: FAIL" >&2
fi
exit $rc
