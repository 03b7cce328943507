#!/bin/sh
# dubbo-go v3.3.1 and libtriplestream finding each other through Dubbo's
# ZooKeeper registry (interface-level registration), Triple over HTTP/2,
# unary and bidi, both directions:
#   1. zk_peer provider (libtriplestream, tri_server_opts_set_registry)
#      <- dubbogo-zk-peer consumer (dubbo-go's ZooKeeper registry)
#   2. dubbogo-zk-peer provider (dubbo-go registers in ZooKeeper)
#      <- zk_peer consumer (libtriplestream's provider watch)
# A real ZooKeeper runs on loopback (test/zk/zk-server.sh).  The Go peer is
# built once per source hash into ${TRI_PEER_DIR:-$HOME/.cache/
# libtriplestream-peers}.  Missing Go, ZooKeeper or ZooKeeper support is a
# FAIL; with TRI_ALLOW_SKIP=1 it is a SKIP (77).
set -u
srcdir=${srcdir:-.}
top_builddir=${top_builddir:-..}
src="$srcdir/peers/dubbogo_zk"
zkscript="$srcdir/zk/zk-server.sh"
peer_c="$top_builddir/test/peers/zk_peer"
[ -x "$peer_c" ] || peer_c="./peers/zk_peer"

skip_or_fail() {
  echo "$1"
  if [ "${TRI_ALLOW_SKIP:-}" = 1 ]; then exit 77; fi
  exit 1
}

grep -q '^#define HAVE_ZOOKEEPER 1' "$top_builddir/config.h" ||
  skip_or_fail "FAIL: libtriplestream built without ZooKeeper (libzookeeper-mt-dev)"
GO=$(command -v go || true)
[ -z "$GO" ] && [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go
[ -n "$GO" ] || skip_or_fail "FAIL: no Go toolchain (go) to build the dubbo-go peer"
# dubbo-go v3.3.1 needs Go 1.24 or later (its go.mod).
gov=$("$GO" env GOVERSION 2>/dev/null | sed 's/^go//')
case $gov in
  1.2[4-9]*|1.[3-9][0-9]*|[2-9].*) ;;
  *) skip_or_fail "FAIL: $GO is Go ${gov:-?}; dubbo-go v3.3.1 needs Go >= 1.24 (go.dev/dl into /usr/local/go)" ;;
esac

# Build the Go peer once per source hash.
hash=$(cat "$src/main.go" "$src/go.mod" "$src/go.sum" | sha256sum | cut -c1-16)
cache=${TRI_PEER_DIR:-$HOME/.cache/libtriplestream-peers}
gopeer="$cache/dubbogo_zk-$hash/dubbogo-zk-peer"
if [ ! -x "$gopeer" ]; then
  mkdir -p "$cache/dubbogo_zk-$hash" || exit 1
  echo "building the dubbo-go peer into $gopeer"
  (cd "$src" && GOFLAGS="-mod=readonly -buildvcs=false" timeout 900 "$GO" build -o "$gopeer.tmp" .) ||
    skip_or_fail "FAIL: cannot build the dubbo-go peer (Go module proxy?)"
  mv "$gopeer.tmp" "$gopeer"
fi

work=$(mktemp -d) || exit 1
pids=
cleanup() {
  for p in $pids; do kill -9 "$p" 2>/dev/null; done
  sh "$zkscript" stop "$work/zk" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

zkport=$(sh "$zkscript" start "$work/zk" 0)
rc=$?
[ $rc -eq 0 ] || { [ $rc -eq 77 ] && skip_or_fail "FAIL: no ZooKeeper/java (apt-get install zookeeper)"; echo "FAIL: ZooKeeper did not start"; exit 1; }
zk="127.0.0.1:$zkport"
echo "ZooKeeper on $zk"
fail=0

# 1. libtriplestream provider, dubbo-go consumer.
"$peer_c" provider "$zk" >"$work/cprov.out" 2>&1 &
cpid=$!
pids="$pids $cpid"
port=
for i in $(seq 1 200); do
  port=$(sed -n 's/^listening on 127.0.0.1://p' "$work/cprov.out")
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "FAIL: zk_peer provider did not start"; cat "$work/cprov.out"; exit 1; }
echo "libtriplestream provider on 127.0.0.1:$port"
out=$(timeout 120 "$gopeer" consumer --zk="$zk" 2>"$work/goc.err")
rc=$?
echo "$out" | sed 's/^/dubbo-go consumer: /'
case $out in *'PASS unary "c:hello"'*'PASS bidi "c:a;c:b;c:c;"'*) ;; *) rc=1 ;; esac
if [ $rc -ne 0 ]; then
  echo "FAIL: dubbo-go consumer -> libtriplestream provider"; tail -20 "$work/goc.err"; fail=1
else
  echo "PASS: dubbo-go consumer -> libtriplestream provider (unary, bidi)"
fi
kill -TERM $cpid
wait $cpid || { echo "FAIL: zk_peer provider did not exit 0"; fail=1; }

# 2. dubbo-go provider, libtriplestream consumer.
gport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$gopeer" provider --zk="$zk" --port="$gport" >"$work/gprov.out" 2>&1 &
gpid=$!
pids="$pids $gpid"
out=$(timeout 60 "$peer_c" consumer "$zk" 2>&1)
rc=$?
echo "$out" | sed 's/^/libtriplestream consumer: /'
case $out in *"found provider 127.0.0.1:$gport"*'PASS unary'*'PASS bidi'*) ;; *) rc=1 ;; esac
if [ $rc -ne 0 ]; then
  echo "FAIL: libtriplestream consumer -> dubbo-go provider"; tail -20 "$work/gprov.out"; fail=1
else
  echo "PASS: libtriplestream consumer -> dubbo-go provider (unary, bidi)"
fi
kill -TERM $gpid 2>/dev/null
exit $fail
