#!/bin/sh
# Meta-test: the shared library exports only the public tri_* API
# (lib/libtriplestream.sym), never internal tri__* helpers, so applications
# cannot come to depend on them or clash with them.
set -eu
lib="${top_builddir:-..}/lib/.libs/libtriplestream.so"
if [ ! -f "$lib" ]; then echo "missing $lib"; exit 1; fi
bad=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRV]$/ {print $3}' | grep -v '^tri_' | grep -v '^tri__' || true)
internal=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep '^tri__' || true)
n=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -c '^tri_' || true)
if [ -n "$bad" ] || [ -n "$internal" ]; then
  echo "unexpected exported symbols:"; echo "$bad $internal"; exit 1
fi
if [ "$n" -lt 40 ]; then echo "only $n tri_ symbols exported"; exit 1; fi
echo "ok: $n tri_ symbols exported, nothing else"
