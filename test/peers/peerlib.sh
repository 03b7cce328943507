# Shell functions of the peer tests (sourced by run_dubbogo.sh,
# run_dubbojs.sh, run_curl.sh; not a test itself).
#
# Every case prints one line, "PASS DIRECTION CASE (detail)" or
# "FAIL DIRECTION CASE: why", and the script ends with "N passed, N
# failed" and exit status 1 on any failure.  A missing peer or tool is a
# failure ("FAIL peer-setup: ..."), or a skip (exit 77) only when
# TRI_ALLOW_SKIP=1.
#
# Servers listen on 127.0.0.1 ephemeral ports, print
# "listening on 127.0.0.1:PORT", and are stopped (by pid) on exit.

peers_here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=$(cd "$peers_here/../.." && pwd)
: "${top_builddir:=$top_srcdir}"
top_builddir=$(cd "$top_builddir" && pwd)
TRI_PEER=$top_builddir/test/peers/tri-peer
PEER_DIR=${TRI_PEER_DIR:-${HOME:-/tmp}/.cache/libtriplestream-peers}
CASE_TIMEOUT=${PEER_CASE_TIMEOUT:-120}

peer_work=$(mktemp -d "${TMPDIR:-/tmp}/tri-peers.XXXXXX") || exit 1
peer_pids=
passed=0
failed=0

peer_cleanup() {
  for p in $peer_pids; do
    kill -TERM "$p" 2>/dev/null
  done
  for p in $peer_pids; do
    i=0
    while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do
      sleep 0.1; i=$((i + 1))
    done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  peer_pids=
  if [ -n "${PEER_KEEP_LOGS:-}" ] && mkdir -p "$PEER_KEEP_LOGS"; then
    cp "$peer_work"/*.out "$peer_work"/*.err "$PEER_KEEP_LOGS"/ 2>/dev/null
  fi
  rm -rf "$peer_work"
}
trap peer_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

summary() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

# A prerequisite is missing: FAIL (or SKIP with TRI_ALLOW_SKIP=1).
missing() {
  if [ "${TRI_ALLOW_SKIP:-}" = 1 ]; then
    echo "SKIP peer-setup: $*"
    exit 77
  fi
  echo "FAIL peer-setup: $*"
  failed=$((failed + 1))
  summary
}

# Builds the Go/npm peers into $PEER_DIR unless they are up to date.
ensure_peers() { # what (dubbogo|dubbojs)
  if ! "$peers_here/build-peers.sh" --only="$1" "$PEER_DIR" \
      >"$peer_work/build-$1.out" 2>&1; then
    missing "test/peers/build-peers.sh --only=$1 $PEER_DIR failed: $(tail -n 5 "$peer_work/build-$1.out" | tr '\n' ' ')"
  fi
}

# start_server NAME CMD... : starts CMD in the background, waits for its
# "listening on 127.0.0.1:PORT" line, sets $port.  Fails hard when it
# does not come within 30 s.
start_server() {
  name=$1; shift
  "$@" >"$peer_work/$name.out" 2>"$peer_work/$name.err" &
  pid=$!
  peer_pids="$peer_pids $pid"
  port=
  i=0
  while [ $i -lt 300 ]; do
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$peer_work/$name.out" 2>/dev/null)
    [ -n "$port" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1; i=$((i + 1))
  done
  missing "$name did not start: $(tail -n 3 "$peer_work/$name.err" | tr '\n' ' ')"
}

# run_client DIRECTION CMD... : runs a client that prints PASS/FAIL lines
# (without the direction), prefixes them, counts them.  A client that
# dies without its lines (or times out) counts as one failure.
run_client() {
  dir=$1; shift
  timeout -k 5 "$CASE_TIMEOUT" "$@" >"$peer_work/client.out" 2>"$peer_work/client.err"
  rc=$?
  np=$(grep -c '^PASS ' "$peer_work/client.out")
  nf=$(grep -c '^FAIL ' "$peer_work/client.out")
  sed -n "s/^\(PASS\|FAIL\) /\1 $dir /p" "$peer_work/client.out"
  passed=$((passed + np))
  failed=$((failed + nf))
  if [ "$rc" -ne 0 ] && [ "$nf" -eq 0 ]; then
    case $rc in
      124|137) why="timed out after ${CASE_TIMEOUT}s" ;;
      *) why="exit status $rc" ;;
    esac
    echo "FAIL $dir client: $why: $(tail -n 3 "$peer_work/client.err" | tr '\n' ' ')"
    failed=$((failed + 1))
  elif [ "$nf" -gt 0 ]; then
    grep -v 'INFO\|WARN\|^$' "$peer_work/client.err" | head -n 10 | sed 's|^|#   |'
  fi
}

# A server must still run after the cases (it did not crash).
check_alive() { # name pid
  if kill -0 "$2" 2>/dev/null; then
    echo "PASS $1 alive after the cases"
    passed=$((passed + 1))
  else
    echo "FAIL $1 exited during the cases: $(tail -n 3 "$peer_work/$1.err" | tr '\n' ' ')"
    failed=$((failed + 1))
  fi
}
