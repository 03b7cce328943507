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
echo "== echo demo"
exec sh "$srcdir/../examples/echo/run-demo.sh" "$top_builddir/examples"
