#!/bin/sh
# dubbo-js peer test (issue 13): @apachedubbo/dubbo + @apachedubbo/dubbo-node
# 3.0.0-alpha (the only version the npm registry serves) against
# libtriplestream, both directions, unary (tri.peer.v1.PeerService/Unary):
#
#   dubbojs->tri  dubbo-js clients against tri-peer server:
#                 triple, triple-json (createDubboTransport, HTTP/2:
#                 application/proto, application/json), triple-h1,
#                 triple-h1-json (HTTP/1.1), grpc (createGrpcTransport);
#                 cases unary, unary_error;
#   tri->dubbojs  tri-peer client --protocol=triple --codec=proto|json and
#                 --protocol=grpc against dubbo-js's server
#                 (dubboNodeAdapter on node:http2); cases unary, unary_error.
#
# The dubbo-js peer is built by build-peers.sh into $TRI_PEER_DIR/dubbojs
# (npm ci from package-lock.json; code generated there with protoc,
# protoc-gen-es and protoc-gen-apache-dubbo-es).  Missing node/npm: FAIL,
# or skip with TRI_ALLOW_SKIP=1.
set -u
. "$(cd "$(dirname "$0")" && pwd)/peerlib.sh"

[ -x "$TRI_PEER" ] || missing "$TRI_PEER not built (make -C test peers/tri-peer)"
command -v node >/dev/null 2>&1 || missing "node not found (Node.js >= 16; Debian: nodejs npm)"
ensure_peers dubbojs
JS=$PEER_DIR/dubbojs/peer.mjs
[ -f "$JS" ] || missing "$JS not built"

start_server tri-server "$TRI_PEER" server; tri_pid=$pid; tri_port=$port
start_server dubbojs-server node "$JS" server; js_pid=$pid; js_port=$port
echo "# tri-peer on :$tri_port; dubbo-js ($(node --version)) on :$js_port"

for m in triple triple-json triple-h1 triple-h1-json grpc; do
  run_client "dubbojs->tri $m" node "$JS" client --addr=127.0.0.1:$tri_port --mode=$m
done
for pc in "triple proto" "triple json" "grpc proto"; do
  set -- $pc
  run_client "tri->dubbojs $1 $2" "$TRI_PEER" client --server_port=$js_port \
    --protocol=$1 --codec=$2 --cases=unary,unary_error
done

check_alive tri-server "$tri_pid"
check_alive dubbojs-server "$js_pid"
summary
