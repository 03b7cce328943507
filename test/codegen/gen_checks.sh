#!/bin/sh
# Checks on the plugin's output text and its errors, beyond what
# check_codegen compiles and runs:
#   - C keywords as method names get a "_" (keywords.proto: protobuf-c
#     1.4's own header cannot compile these, so only the text is checked);
#   - colliding method names are an error, not broken C;
#   - a file without services gives no output;
#   - comments, deprecated and idempotency options reach the header.
# Environment: PROTOC, PLUGIN, srcdir, PROTOBUF_PROTODIR; the generated
# tri/test/v1/kitchen.tri.h in the current directory.
set -eu

fail() {
  echo "gen_checks: FAIL: $*" >&2
  exit 1
}

: "${PROTOC:?}" "${PLUGIN:?}" "${srcdir:?}" "${PROTOBUF_PROTODIR:?}"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tri-gen.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

gen() {
  "$PROTOC" -I"$srcdir/proto" -I"$PROTOBUF_PROTODIR" \
    --plugin=protoc-gen-triplestream="$PLUGIN" --triplestream_out="$tmp" \
    "$srcdir/proto/$1"
}

"$PLUGIN" --version | grep -q '^protoc-gen-triplestream ' || fail "--version"
"$PLUGIN" --help >/dev/null || fail "--help"
if "$PLUGIN" </dev/null >/dev/null 2>&1; then :; else
  fail "an empty request is a valid (empty) CodeGeneratorRequest"
fi
if echo garbage | "$PLUGIN" >/dev/null 2>&1; then
  fail "garbage on stdin was accepted"
fi

gen keywords.proto || fail "keywords.proto"
h=$tmp/keywords.tri.h
grep -q '(\*default_)(' "$h" || fail "no default_ member"
grep -q '(\*int_)(' "$h" || fail "no int_ member"
grep -q '^int kw__kw__register__open(' "$h" || fail "Register method"
grep -q '^int kw__kw__tri_register(' "$h" || fail "registration function"
grep -q '"/kw.Kw/Default"' "$h" || fail "path keeps the proto name"

if gen collide.proto 2>"$tmp/err"; then
  fail "collide.proto was accepted"
fi
grep -q 'defined twice' "$tmp/err" || { cat "$tmp/err" >&2; fail "message"; }

gen messages_only.proto || fail "messages_only.proto"
test ! -e "$tmp/messages_only.tri.h" || fail "output for a file without service"

k=tri/test/v1/kitchen.tri.h
test -f "$k" || fail "$k not generated"
grep -q '^ \* The kitchen sink service\.$' "$k" || fail "service comment"
grep -q '^ \* Echo the nested message back (unary)\.$' "$k" ||
  fail "method comment"
grep -q '"\* /" must not end' "$k" || fail "comment end not defused"
grep -q 'Deprecated: the \.proto marks this method' "$k" ||
  fail "deprecated method comment"
grep -q 'Idempotency: NO_SIDE_EFFECTS' "$k" || fail "idempotency comment"
grep -A2 '^int tri__test__v1__kitchen__old_echo__call(' "$k" |
  grep -q 'PROTOBUF_C__DEPRECATED;' || fail "deprecated attribute (method)"
grep -A2 '^int tri__test__v1__ops__ping__call(' "$k" |
  grep -q 'PROTOBUF_C__DEPRECATED;' || fail "deprecated attribute (service)"
if grep -A2 '^int tri__test__v1__kitchen__echo__call(' "$k" |
    grep -q 'PROTOBUF_C__DEPRECATED'; then
  fail "echo is not deprecated"
fi
echo "gen_checks: PASS"
