#!/bin/sh
# Run the examples as part of `make check`: they are what users copy, so an
# API change that breaks them fails the test suite.  The script comes from
# the source tree (srcdir), the programs from the build tree (top_builddir,
# exported by test/Makefile), so this also works in a VPATH build and under
# distcheck.
set -u
srcdir=${srcdir:-.}
top_builddir=${top_builddir:-..}
rg="$top_builddir/examples/route_guide/route_guide"
if [ ! -x "$rg" ]; then
  echo "FAIL: $rg was not built"
  exit 1
fi
echo "== route_guide (all four RPC kinds on generated stubs)"
timeout 60 "$rg" || { echo "FAIL: route_guide"; exit 1; }
echo "== raw API client and server (README)"
raw="$top_builddir/examples/raw"
out=$(mktemp) || exit 1
"$raw/raw_server" 0 >"$out" 2>&1 &
rpid=$!
port=
for i in $(seq 1 100); do
  port=$(sed -n 's/^listening on 127.0.0.1://p' "$out")
  [ -n "$port" ] && break
  sleep 0.05
done
if [ -z "$port" ]; then echo "FAIL: raw_server did not start"; cat "$out"; kill $rpid; exit 1; fi
cout=$(timeout 20 "$raw/raw_client" "127.0.0.1:$port") || {
  echo "FAIL: raw_client: $cout"; kill $rpid; exit 1; }
echo "$cout"
case $cout in *"got 5 bytes: hello"*"status TRI_OK"*) ;; *)
  echo "FAIL: raw_client output"; kill $rpid; exit 1 ;; esac
kill -TERM $rpid
wait $rpid || { echo "FAIL: raw_server did not exit 0 on SIGTERM"; exit 1; }
rm -f "$out"
echo "== targets and load balancing (README)"
ch="$top_builddir/examples/channel"
cout=$(timeout 30 "$ch/lb_demo" round_robin) || {
  echo "FAIL: lb_demo: $cout"; exit 1; }
echo "$cout"
case $cout in *"127.0.0.1 answered 10 calls"*"127.0.0.2 answered 10 calls"*"127.0.0.3 answered 10 calls"*) ;; *)
  echo "FAIL: lb_demo round_robin: not 10 calls each"; exit 1 ;; esac
cout=$(timeout 30 "$ch/lb_demo" pick_first) || {
  echo "FAIL: lb_demo pick_first: $cout"; exit 1; }
case $cout in *"127.0.0.1 answered 30 calls"*) ;; *)
  echo "FAIL: lb_demo pick_first: $cout"; exit 1 ;; esac
echo "== keepalive and connection management (README)"
cout=$(timeout 30 "$ch/reconnect_demo") || {
  echo "FAIL: reconnect_demo: $cout"; exit 1; }
echo "$cout"
case $cout in *"call while down: TRI_UNAVAILABLE (cannot connect to"*"wait-for-ready call: TRI_OK"*"call after the restart: TRI_OK"*) ;; *)
  echo "FAIL: reconnect_demo output"; exit 1 ;; esac
echo "== mutual-TLS client and server (README)"
if grep -q '^#define HAVE_OPENSSL 1' "$top_builddir/config.h"; then
  tdir=$(mktemp -d) || exit 1
  sh "$srcdir/../examples/tls/make-certs.sh" "$tdir/certs" >"$tdir/certs.log" 2>&1 || {
    echo "FAIL: examples/tls/make-certs.sh"; cat "$tdir/certs.log"; exit 1; }
  "$top_builddir/examples/tls/tls_server" "$tdir/certs" 0 >"$tdir/out" 2>&1 &
  tpid=$!
  port=
  for i in $(seq 1 100); do
    port=$(sed -n 's/^listening on 127.0.0.1://p' "$tdir/out")
    [ -n "$port" ] && break
    sleep 0.05
  done
  if [ -z "$port" ]; then echo "FAIL: tls_server did not start"; cat "$tdir/out"; kill $tpid; exit 1; fi
  cout=$(timeout 20 "$top_builddir/examples/tls/tls_client" "$tdir/certs" "127.0.0.1:$port" 2>&1) || {
    echo "FAIL: tls_client: $cout"; kill $tpid; exit 1; }
  echo "$cout"
  case $cout in "hello CN=demo-client from 127.0.0.1:"*" over TLSv1.3") ;; *)
    echo "FAIL: tls_client output"; kill $tpid; exit 1 ;; esac
  kill -TERM $tpid
  wait $tpid || { echo "FAIL: tls_server did not exit 0 on SIGTERM"; exit 1; }
  rm -rf "$tdir"
else
  echo "(not built with OpenSSL: integ_tls checks that TLS is refused)"
fi
echo "== ZooKeeper provider (README)"
if grep -q '^#define HAVE_ZOOKEEPER 1' "$top_builddir/config.h"; then
  zdir=$(mktemp -d) || exit 1
  zkport=$(sh "$srcdir/zk/zk-server.sh" start "$zdir/zk" 0) || {
    echo "FAIL: cannot start ZooKeeper (test/zk/zk-server.sh; apt-get install zookeeper)"
    rm -rf "$zdir"; exit 1; }
  "$top_builddir/examples/zk/zk_provider" "127.0.0.1:$zkport" 0 >"$zdir/out" 2>&1 &
  zpid=$!
  port=
  for i in $(seq 1 100); do
    port=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\),.*/\1/p' "$zdir/out")
    [ -n "$port" ] && break
    sleep 0.05
  done
  if [ -z "$port" ]; then echo "FAIL: zk_provider did not start"; cat "$zdir/out"
    kill $zpid; sh "$srcdir/zk/zk-server.sh" stop "$zdir/zk"; exit 1; fi
  cat "$zdir/out"
  cout=$(timeout 20 "$raw/raw_client" "127.0.0.1:$port") || {
    echo "FAIL: raw_client to zk_provider: $cout"; kill $zpid
    sh "$srcdir/zk/zk-server.sh" stop "$zdir/zk"; exit 1; }
  kill -TERM $zpid
  wait $zpid || { echo "FAIL: zk_provider did not exit 0 on SIGTERM"
    sh "$srcdir/zk/zk-server.sh" stop "$zdir/zk"; exit 1; }
  sh "$srcdir/zk/zk-server.sh" stop "$zdir/zk"
  rm -rf "$zdir"
else
  echo "(not built with ZooKeeper: integ_zk fails without it)"
fi
echo "== echo demo"
exec sh "$srcdir/../examples/echo/run-demo.sh" "$top_builddir/examples"
