#!/bin/sh
# tri-interop-server --registry=zookeeper://... registers
# grpc.testing.TestService in Dubbo's ZooKeeper registry (doc/PROTOCOL.md
# 18), and tri-interop-client --target=zookeeper://ZK/grpc.testing.TestService
# finds it there (it is given only ZooKeeper's port) and runs empty_unary
# and large_unary.  A real ZooKeeper runs on loopback (test/zk/zk-server.sh).
# Missing ZooKeeper/Java or a library without ZooKeeper support is a FAIL;
# with TRI_ALLOW_SKIP=1 a SKIP (77).  Environment: top_builddir (make check).
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${top_builddir:=$here/../..}"
server="$top_builddir/tools/tri-interop-server"
client="$top_builddir/tools/tri-interop-client"
zkscript="$here/zk-server.sh"

skip_or_fail() {
  echo "$1"
  [ "${TRI_ALLOW_SKIP:-0}" = 1 ] && exit 77
  exit 1
}

grep -q '^#define HAVE_ZOOKEEPER 1' "$top_builddir/config.h" ||
  skip_or_fail "FAIL: libtriplestream built without ZooKeeper (libzookeeper-mt-dev)"

work=$(mktemp -d "${TMPDIR:-/tmp}/tri-zkreg.XXXXXX") || exit 1
spid=
cleanup() {
  if [ -n "$spid" ]; then
    kill "$spid" 2>/dev/null
    i=0   # it deletes its node and drains (1 s); then SIGKILL
    while kill -0 "$spid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -9 "$spid" 2>/dev/null
  fi
  sh "$zkscript" stop "$work/zk" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

zkport=$(sh "$zkscript" start "$work/zk" 0)
rc=$?
[ $rc -eq 77 ] && skip_or_fail "FAIL: no ZooKeeper/Java (apt-get install zookeeper)"
[ $rc -eq 0 ] || { echo "FAIL: ZooKeeper did not start"; exit 1; }
echo "ZooKeeper on 127.0.0.1:$zkport"

"$server" --port=0 "--registry=zookeeper://127.0.0.1:$zkport?session=5000" \
  >"$work/srv.out" 2>"$work/srv.err" &
spid=$!
port=
i=0
while [ -z "$port" ] && [ $i -lt 100 ]; do   # 10 s
  port=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$work/srv.out")
  [ -n "$port" ] && break
  kill -0 "$spid" 2>/dev/null || break
  sleep 0.1; i=$((i + 1))
done
[ -n "$port" ] || { echo "FAIL: tri-interop-server --registry did not start"; cat "$work/srv.err"; exit 1; }
echo "tri-interop-server on 127.0.0.1:$port, registered in ZooKeeper"

target="zookeeper://127.0.0.1:$zkport/grpc.testing.TestService"
fail=0
for tc in empty_unary large_unary; do
  # registration runs in the background: the first call may come before
  # the provider node; retry for at most 10 s
  ok=0
  i=0
  while [ $i -lt 20 ]; do
    if timeout 30 "$client" "--target=$target" "--test_case=$tc" \
         >"$work/cli.out" 2>&1; then
      ok=1; break
    fi
    sleep 0.5; i=$((i + 1))
  done
  if [ $ok = 1 ]; then
    echo "PASS interop via ZooKeeper registry: $tc"
  else
    echo "FAIL interop via ZooKeeper registry: $tc"; cat "$work/cli.out"; fail=1
  fi
done
exit $fail
