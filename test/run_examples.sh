#!/bin/sh
# Run the examples as part of `make check` (STYLE.md 9): an API change that
# breaks them fails the test suite.  The script comes from the source tree
# (srcdir), the programs from the build tree (top_builddir, exported by
# test/Makefile), so this also works in a VPATH build and under distcheck.
set -u
srcdir=${srcdir:-.}
top_builddir=${top_builddir:-..}
exec sh "$srcdir/../examples/echo/run-demo.sh" "$top_builddir/examples"
