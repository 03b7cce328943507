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
echo "== echo demo"
exec sh "$srcdir/../examples/echo/run-demo.sh" "$top_builddir/examples"
