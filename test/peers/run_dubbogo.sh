#!/bin/sh
# dubbo-go peer test (issue 13): dubbo-go v3.3.1 against libtriplestream,
# both directions, every method of tri.peer.v1.PeerService
# (test/peers/proto/tri/peer/v1/peer.proto).
#
# Servers: tri-peer (ours) and dubbogo-peer, each twice: plain, and
# registered only under group g1 / version 1.0.0.
#
# dubbogo->tri, per dubbo-go client mode (see dubbogo/main.go):
#   dubbo           dubbo-go's default client (generated stub): gRPC
#                   (application/grpc+proto) for every RPC kind: unary,
#                   unary_error, server_stream, client_stream, bidi,
#                   deadline, cancel (server streaming), cancel_bidi;
#   dubbo-json      the same with serialization json (application/grpc+json);
#   triple, triple-json         dubbo-go's Triple unary protocol over
#                   HTTP/2 (application/proto, application/json):
#                   unary, unary_error, deadline;
#   triple-h1, triple-h1-json   the same over HTTP/1.1: unary, unary_error;
#   "gv" runs against the g1/1.0.0 servers add group_version and
#   group_mismatch (another group: UNIMPLEMENTED).
# tri->dubbogo: tri-peer client --protocol=grpc|triple --codec=proto|json:
#   unary, unary_error, server_stream, client_stream, bidi, deadline,
#   cancel, close_hold (+ group_version, group_mismatch).
#
# Timing bounds: our server's handler sees a client's cancel within
# 100 ms (PEER_CANCEL_BOUND_MS); our recv blocked on a stream the server
# never closes returns within 50 ms of tri_stream_cancel(); deadlines of
# 200 ms end in [200, 500) ms (both bounds times CK_TIMEOUT_MULTIPLIER
# where they measure us).
#
# Environment: top_builddir (make check), TRI_PEER_DIR (peer cache, see
# build-peers.sh), TRI_ALLOW_SKIP=1 (missing Go: skip instead of fail),
# PEER_KEEP_LOGS=DIR.
set -u
. "$(cd "$(dirname "$0")" && pwd)/peerlib.sh"

[ -x "$TRI_PEER" ] || missing "$TRI_PEER not built (make -C test peers/tri-peer)"
ensure_peers dubbogo
DG=$PEER_DIR/dubbogo/dubbogo-peer
[ -x "$DG" ] || missing "$DG not built"
mult=${CK_TIMEOUT_MULTIPLIER:-1}
mult=${mult%%.*}
case $mult in '' | *[!0-9]*) mult=1 ;; esac
bound=$(( ${PEER_CANCEL_BOUND_MS:-100} * mult ))

start_server tri-server "$TRI_PEER" server; tri_pid=$pid; tri_port=$port
start_server tri-server-gv "$TRI_PEER" server --group=g1 --version=1.0.0
tri_gv_pid=$pid; tri_gv_port=$port
start_server dubbogo-server "$DG" server; dg_pid=$pid; dg_port=$port
start_server dubbogo-server-gv "$DG" server --group=g1 --version=1.0.0
dg_gv_pid=$pid; dg_gv_port=$port
echo "# tri-peer on :$tri_port (g1/1.0.0 on :$tri_gv_port); dubbogo-peer on :$dg_port (g1/1.0.0 on :$dg_gv_port)"

for m in dubbo dubbo-json triple triple-json triple-h1 triple-h1-json; do
  run_client "dubbogo->tri $m" "$DG" client --addr=127.0.0.1:$tri_port \
    --mode=$m --cancel_bound=${bound}ms
done
for m in dubbo triple; do
  run_client "dubbogo->tri $m gv" "$DG" client --addr=127.0.0.1:$tri_gv_port \
    --mode=$m --group=g1 --version=1.0.0 --cancel_bound=${bound}ms \
    --cases=unary,group_version,group_mismatch
done

for p in grpc triple; do
  for c in proto json; do
    run_client "tri->dubbogo $p $c" "$TRI_PEER" client --server_port=$dg_port \
      --protocol=$p --codec=$c --cancel_bound_ms=1000
  done
  run_client "tri->dubbogo $p gv" "$TRI_PEER" client --server_port=$dg_gv_port \
    --protocol=$p --group=g1 --version=1.0.0 \
    --cases=unary,group_version,group_mismatch
done

check_alive tri-server "$tri_pid"
check_alive tri-server-gv "$tri_gv_pid"
check_alive dubbogo-server "$dg_pid"
summary
