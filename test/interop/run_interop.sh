#!/bin/sh
# gRPC interop matrix for libtriplestream (doc/PROTOCOL.md section 12).
#
# Directions (client -> server):
#   tri->tri  tools/tri-interop-client  vs tools/tri-interop-server
#   tri->py   tools/tri-interop-client  vs test/interop/py_server.py
#   py->tri   test/interop/py_client.py vs tools/tri-interop-server
#   py->py    reference run of the Python pair (only if listed in
#             INTEROP_DIRECTIONS; checks the harness, not the library)
# Every case runs in every direction; one line per (direction, case), then
# "N passed, N failed".  Exit status 1 on any failure, including a Python
# without grpcio (that is a failure, not a skip: the matrix cannot run).
#
# TLS: INTEROP_TLS=tls serves and connects over TLS with the certificates
# of test/tls/gen-certs.sh in INTEROP_CERTS (clients verify the server
# against the name foo.test.invalid, a wildcard SAN); INTEROP_TLS=mtls
# also requires and presents client certificates (clients verify
# 127.0.0.1, an IP SAN).  Lines then read "PASS tls tri->py CASE".
# test/interop/run_interop_tls.sh runs both.
#
# Environment: top_builddir (set by `make check`; default: the source tree),
# PYTHON (default /usr/bin/python3), PROTOC (default protoc),
# INTEROP_CASES (space-separated subset), INTEROP_DIRECTIONS (subset of
# "tri->tri tri->py py->tri py->py"), INTEROP_CASE_TIMEOUT (seconds, 60).
# Servers listen on 127.0.0.1 ephemeral ports and are killed on exit.

set -u

here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=$(cd "$here/../.." && pwd)
: "${top_builddir:=$top_srcdir}"
top_builddir=$(cd "$top_builddir" && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
PYTHONDONTWRITEBYTECODE=1
export PYTHONDONTWRITEBYTECODE
PROTOC=${PROTOC:-protoc}
CASE_TIMEOUT=${INTEROP_CASE_TIMEOUT:-60}
DIRECTIONS=${INTEROP_DIRECTIONS:-"tri->tri tri->py py->tri"}
CASES=${INTEROP_CASES:-"empty_unary large_unary client_streaming
  server_streaming ping_pong empty_stream timeout_on_sleeping_server
  cancel_after_begin cancel_after_first_response custom_metadata
  status_code_and_message special_status_message unimplemented_method
  unimplemented_service client_compressed_unary server_compressed_unary
  client_compressed_streaming server_compressed_streaming"}

TLS_MODE=${INTEROP_TLS:-}
server_tls=
client_tls=
label=
case $TLS_MODE in
  '') ;;
  tls|mtls)
    certs=${INTEROP_CERTS:?INTEROP_TLS needs INTEROP_CERTS (test/tls/gen-certs.sh DIR)}
    label="$TLS_MODE "
    server_tls="--use_tls --tls_cert_file=$certs/server.pem --tls_key_file=$certs/server.key"
    if [ "$TLS_MODE" = mtls ]; then
      server_tls="$server_tls --tls_client_ca_file=$certs/ca.pem"
      client_tls="--use_tls=true --tls_ca_file=$certs/ca.pem --tls_cert_file=$certs/client.pem --tls_key_file=$certs/client.key"
    else
      client_tls="--use_tls=true --tls_ca_file=$certs/ca.pem --server_host_override=foo.test.invalid"
    fi ;;
  *) echo "FAIL interop: INTEROP_TLS must be tls or mtls"; echo "0 passed, 1 failed"; exit 1 ;;
esac

TRI_SERVER=$top_builddir/tools/tri-interop-server
TRI_CLIENT=$top_builddir/tools/tri-interop-client

work=$(mktemp -d "${TMPDIR:-/tmp}/tri-interop.XXXXXX") || exit 1
tri_pid=
py_pid=

stop_server() { # pid
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null || return 0
  i=0
  while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do
    sleep 0.1; i=$((i + 1))
  done
  kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}

cleanup() {
  stop_server "$tri_pid"; tri_pid=
  stop_server "$py_pid"; py_pid=
  if [ -n "${INTEROP_KEEP_LOGS:-}" ] && mkdir -p "$INTEROP_KEEP_LOGS"; then
    cp "$work"/*.err "$work"/*.out "$INTEROP_KEEP_LOGS"/ 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail_hard() {
  echo "FAIL interop: $*"
  echo "0 passed, 1 failed"
  exit 1
}

# --- prerequisites -------------------------------------------------------
need_py=no
need_tri=no
for d in $DIRECTIONS; do
  case $d in
    'tri->tri') need_tri=yes ;;
    'tri->py'|'py->tri') need_tri=yes; need_py=yes ;;
    'py->py') need_py=yes ;;
    *) fail_hard "unknown direction '$d' in INTEROP_DIRECTIONS" ;;
  esac
done

if [ $need_tri = yes ]; then
  for b in "$TRI_SERVER" "$TRI_CLIENT"; do
    [ -x "$b" ] || fail_hard "$b not built (make -C tools)"
  done
fi

if [ $need_py = yes ]; then
  [ -x "$PYTHON" ] || fail_hard "$PYTHON not found: the Python side needs python3 with grpcio (Debian: python3-grpcio)"
  if ! ver=$("$PYTHON" -c 'import grpc, google.protobuf; print(grpc.__version__)' 2>"$work/py.err"); then
    fail_hard "$PYTHON cannot import grpc / google.protobuf ($(tail -n 1 "$work/py.err")); install python3-grpcio and python3-protobuf"
  fi
  command -v "$PROTOC" >/dev/null 2>&1 \
    || fail_hard "$PROTOC not found: the Python messages are generated with protoc --python_out (Debian: protobuf-compiler)"
  # Generate the Python messages once; both Python programs load them.
  mkdir -p "$work/pb"
  "$PROTOC" -I"$top_srcdir/tools/proto" --python_out="$work/pb" \
      grpc/testing/empty.proto grpc/testing/messages.proto grpc/testing/test.proto \
      2>"$work/protoc.err" \
    || fail_hard "protoc --python_out failed: $(head -n 3 "$work/protoc.err")"
  INTEROP_PB_DIR=$work/pb
  INTEROP_PROTO_DIR=$top_srcdir/tools/proto
  export INTEROP_PB_DIR INTEROP_PROTO_DIR
  echo "# python grpcio $ver ($PYTHON)"
fi

# --- servers -------------------------------------------------------------
# start_server NAME CMD... : sets $port and $pid, or fails hard.
start_server() {
  name=$1; shift
  # shellcheck disable=SC2086
  "$@" --port=0 $server_tls >"$work/$name.out" 2>"$work/$name.err" &
  pid=$!
  port=
  i=0
  while [ $i -lt 200 ]; do # 20 s
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$work/$name.out")
    [ -n "$port" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1; i=$((i + 1))
  done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  fail_hard "$name did not start: $(tail -n 3 "$work/$name.err" | tr '\n' ' ')"
}

tri_port=
py_port=
case " $DIRECTIONS " in *'->tri '*)
  start_server tri-server "$TRI_SERVER"
  tri_pid=$pid; tri_port=$port
  echo "# tri-interop-server on 127.0.0.1:$tri_port${label:+ ($TLS_MODE)}" ;;
esac
case " $DIRECTIONS " in *'->py '*)
  start_server py-server "$PYTHON" "$here/py_server.py"
  py_pid=$pid; py_port=$port
  echo "# py_server.py on 127.0.0.1:$py_port${label:+ ($TLS_MODE)}" ;;
esac

# --- matrix --------------------------------------------------------------
passed=0
failed=0
xfailed=0
XFAIL=${INTEROP_XFAIL:-}

is_xfail() { # direction case
  for x in $XFAIL; do
    [ "$x" = "$2" ] || [ "$x" = "$1:$2" ] && return 0
  done
  return 1
}

run_case() { # direction case
  dir=$1; tc=$2
  case $dir in
    tri-\>*) client="$TRI_CLIENT" ;;
    *) client="$PYTHON $here/py_client.py" ;;
  esac
  case $dir in
    *-\>tri) sport=$tri_port; spid=$tri_pid ;;
    *) sport=$py_port; spid=$py_pid ;;
  esac
  # shellcheck disable=SC2086
  INTEROP_PY_STACKS_AFTER=$((CASE_TIMEOUT > 10 ? CASE_TIMEOUT - 5 : CASE_TIMEOUT)) \
  timeout -k 5 "$CASE_TIMEOUT" $client --server_host=127.0.0.1 \
      --server_port="$sport" --test_case="$tc" ${client_tls:---use_tls=false} \
      >"$work/case.out" 2>"$work/case.err"
  rc=$?
  if [ $rc -eq 0 ]; then
    if is_xfail "$dir" "$tc"; then
      echo "XPASS $label$dir $tc: listed in INTEROP_XFAIL but passed"
      failed=$((failed + 1))
    else
      echo "PASS $label$dir $tc"
      passed=$((passed + 1))
    fi
    return
  fi
  reason=$(grep -m 1 '^FAIL' "$work/case.err" | sed 's/^FAIL [^:]*: //')
  [ -n "$reason" ] || reason=$(tail -n 1 "$work/case.err")
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && reason="timed out after ${CASE_TIMEOUT}s${reason:+ ($reason)}"
  [ -n "$reason" ] || reason="exit status $rc"
  kill -0 "$spid" 2>/dev/null || reason="$reason [server has exited]"
  if is_xfail "$dir" "$tc"; then
    echo "XFAIL $label$dir $tc: $reason"
    xfailed=$((xfailed + 1))
    return
  fi
  echo "FAIL $label$dir $tc: $reason"
  failed=$((failed + 1))
  # keep the rest of the client's stderr (sanitizer reports, a hung
  # Python client's stacks...) and the end of the server's for the log
  grep -v '^FAIL' "$work/case.err" | head -n 60 | sed 's|^|#   |'
  case $dir in
    *-\>tri) serr="$work/tri-server.err" ;;
    *) serr="$work/py-server.err" ;;
  esac
  if [ -s "$serr" ]; then
    echo "#   -- last lines of the server's stderr:"
    tail -n 15 "$serr" | sed 's|^|#   |'
  fi
}

for d in $DIRECTIONS; do
  for tc in $CASES; do
    run_case "$d" "$tc"
  done
done

# Channel targets and load-balancing policies (doc/PROTOCOL.md 17):
# tools/tri-interop-client --target/--lb_policy against both servers.
if [ -z "$label" ]; then
  for srv in tri py; do
    eval "sport=\$${srv}_port"
    [ -n "$sport" ] || continue
    for spec in "ipv4:127.0.0.1:$sport,127.0.0.1:$sport round_robin" \
                "dns:///localhost:$sport round_robin" \
                "127.0.0.1:$sport pick_first"; do
      set -- $spec
      for tc in large_unary ping_pong; do
        if timeout -k 5 "$CASE_TIMEOUT" "$TRI_CLIENT" --target="$1" \
            --lb_policy="$2" --test_case="$tc" >"$work/case.out" \
            2>"$work/case.err"; then
          echo "PASS target tri->$srv $1 $2 $tc"
          passed=$((passed + 1))
        else
          echo "FAIL target tri->$srv $1 $2 $tc: $(tail -n 1 "$work/case.err")"
          failed=$((failed + 1))
        fi
      done
    done
  done
fi

# A server must survive the matrix and stop cleanly on SIGTERM (graceful
# tri_server_shutdown); sanitizer reports land in its stderr.
check_server_exit() { # name pid
  name=$1; pid=$2
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null; st=$?
    echo "FAIL $name: exited during the matrix (status $st): $(tail -n 3 "$work/$name.err" | tr '\n' ' ')"
    failed=$((failed + 1))
    return
  fi
  kill -TERM "$pid"
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do # 10 s
    sleep 0.1; i=$((i + 1))
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    echo "FAIL $name: still running 10 s after SIGTERM"
    failed=$((failed + 1))
    return
  fi
  wait "$pid"; st=$?
  if [ $st -ne 0 ]; then
    echo "FAIL $name: exit status $st after SIGTERM: $(tail -n 3 "$work/$name.err" | tr '\n' ' ')"
    failed=$((failed + 1))
  else
    echo "PASS $name: clean shutdown"
    passed=$((passed + 1))
  fi
}
if [ -n "$tri_pid" ]; then check_server_exit tri-server "$tri_pid"; tri_pid=; fi
if [ -n "$py_pid" ]; then stop_server "$py_pid"; py_pid=; fi

if [ $xfailed -gt 0 ]; then
  echo "$passed passed, $failed failed ($xfailed expected failures)"
else
  echo "$passed passed, $failed failed"
fi
[ $failed -eq 0 ]
