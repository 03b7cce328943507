#!/bin/sh
# Install libtriplestream into a staging directory (make install
# DESTDIR=...), then build project/ -- a .proto, main.c and a three-line
# Makefile -- against it using nothing but pkg-config, and run it.
#
# Works in "make check" and "make distcheck": only the staging directory
# is written, never the prefix or the source tree.  Every missing piece
# (header, library, plugin, make snippet, pkg-config variable) fails.
#
# Environment (from Makefile.am): top_builddir (absolute), srcdir, MAKE,
# prefix, libdir, PKG_CONFIG.  TRI_TEST_PC, if set, is used instead of the
# installed triplestream.pc (only to try a .pc.in change by hand).
set -eu

fail() {
  echo "install_test: FAIL: $*" >&2
  exit 1
}

: "${top_builddir:?}" "${srcdir:?}" "${prefix:?}" "${libdir:?}"
MAKE=${MAKE:-make}
PKG_CONFIG=${PKG_CONFIG:-pkg-config}
command -v "$PKG_CONFIG" >/dev/null 2>&1 || fail "pkg-config not found"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tri-install.XXXXXX")
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT INT TERM
dest=$tmp/dest

# 1. Stage the pieces a user gets from "make install".
for d in include lib tools/codegen; do
  $MAKE -C "$top_builddir/$d" install DESTDIR="$dest" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; fail "make -C $d install"; }
done
$MAKE -C "$top_builddir" install-pkgconfigDATA DESTDIR="$dest" \
  >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log" >&2; fail "make install-pkgconfigDATA"; }

# 2. Point the staged .pc at the staging directory: prefix, and any
#    variable holding an absolute path under it.
pc=$dest$libdir/pkgconfig/triplestream.pc
test -f "$pc" || fail "$pc not installed"
if test -n "${TRI_TEST_PC:-}"; then
  pc=$TRI_TEST_PC
fi
mkdir "$tmp/pc"
sed -e "s|^prefix=$prefix\$|prefix=$dest$prefix|" \
    -e "s|=$prefix/|=$dest$prefix/|" "$pc" >"$tmp/pc/triplestream.pc"
PKG_CONFIG_PATH=$tmp/pc${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export PKG_CONFIG_PATH

plugin=$($PKG_CONFIG --variable=protoc_gen_triplestream triplestream)
amfile=$($PKG_CONFIG --variable=amfile triplestream)
test -n "$plugin" ||
  fail "triplestream.pc has no protoc_gen_triplestream variable"
test -n "$amfile" || fail "triplestream.pc has no amfile variable"
case $plugin in "$dest"/*) ;; *) fail "plugin $plugin is not staged" ;; esac
test -x "$plugin" || fail "$plugin is not installed"
test -f "$amfile" || fail "$amfile is not installed"
"$plugin" --version >/dev/null || fail "$plugin --version"

# 3. The project: copy it (srcdir may be read-only) and build it with its
#    own Makefile: generate, compile, link, all through pkg-config.
mkdir "$tmp/project"
cp "$srcdir/project/hello.proto" "$srcdir/project/main.c" \
  "$srcdir/project/Makefile" "$tmp/project/"
chmod u+w "$tmp/project"/*
(
  cd "$tmp/project"
  # Nothing of this test's own environment may leak into the project.
  unset MAKEFLAGS MFLAGS srcdir top_builddir PLUGIN PROTOC PROTOBUF_PROTODIR
  # A sanitizer build's library needs the sanitizer runtime in the
  # program too (pkg-config does not carry build-time sanitizer flags).
  $MAKE hello CFLAGS="-Wall -Wextra -Werror ${SANCFLAGS:-}"
) >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; fail "project build"; }
for f in hello.pb-c.c hello.pb-c.h hello.tri.c hello.tri.h hello; do
  test -f "$tmp/project/$f" || fail "project: $f was not made"
done

# 4. Run it against the staged shared library.
LD_LIBRARY_PATH=$dest$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH
out=$("$tmp/project/hello") || fail "project run"
echo "install_test: $out"
case $out in "Hello pkg-config"*) ;; *) fail "unexpected output: $out" ;; esac

# 5. The README's raw client and server, built as the README says (cc with
#    pkg-config and -Wl,-rpath to the library directory) and run with no
#    LD_LIBRARY_PATH: a byte-only program must not need protobuf-c.
unset LD_LIBRARY_PATH
libs=$($PKG_CONFIG --libs triplestream)
case " $libs " in *protobuf-c*) fail "pkg-config --libs triplestream pulls in protobuf-c: $libs" ;; esac
for prog in raw_server raw_client; do
  ${CC:-cc} ${SANCFLAGS:-} -Wall -Werror -o "$tmp/$prog" \
    "$srcdir/../../examples/raw/$prog.c" $($PKG_CONFIG --cflags triplestream) \
    $libs -Wl,-rpath,"$dest$libdir" >"$tmp/build.log" 2>&1 ||
    { cat "$tmp/build.log" >&2; fail "cc $prog.c with pkg-config"; }
done
"$tmp/raw_server" 0 >"$tmp/server.out" 2>&1 &
spid=$!
port=
for i in $(seq 1 100); do
  port=$(sed -n 's/^listening on 127.0.0.1://p' "$tmp/server.out")
  test -n "$port" && break
  sleep 0.05
done
test -n "$port" || { kill $spid; cat "$tmp/server.out" >&2; fail "raw_server did not start"; }
out=$("$tmp/raw_client" "127.0.0.1:$port") || { kill $spid; fail "raw_client: $out"; }
kill -TERM $spid
wait $spid || fail "raw_server did not exit 0 on SIGTERM"
case $out in *"got 5 bytes: hello"*"status TRI_OK"*) ;; *) fail "raw_client said: $out" ;; esac
echo "install_test: README raw client and server: $out" | tr '\n' ' '; echo
echo "install_test: PASS"
