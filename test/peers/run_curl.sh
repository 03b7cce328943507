#!/bin/sh
# curl peer test (issue 13): Triple's unary HTTP protocol (Triple spec
# §3.1) spoken by curl to our server, over HTTP/1.1 and over HTTP/2 with
# prior knowledge (h2c), with JSON and protobuf bodies.
#
# Against tri-peer server (tri.peer.v1.PeerService/Unary):
#   ok          200, the request's content-type, the echoed message
#               (proto bodies made and read with protoc --encode/--decode
#               from peer.proto);
#   code-N      a handler failing with each gRPC code 1..16: the HTTP
#               status of the Triple spec's table and the JSON error body
#               {"code":"<name>","message":"..."}, for JSON and for
#               protobuf requests (errors are JSON whatever the codec);
#   415         an unknown content-type (text/plain) is refused 415;
#   404         an unknown method: 404, code "unimplemented".
# Against tri-interop-server: the interop line
#   curl -H 'content-type: application/json' -d '{"responseSize":8}' \
#     .../grpc.testing.TestService/UnaryCall
# must answer exactly {"payload":{"body":"AAAAAAAAAAA="}}.
#
# Environment: top_builddir (make check), CURL (default curl), PROTOC
# (default protoc), PYTHON (default python3, reads the JSON bodies),
# TRI_ALLOW_SKIP=1 (a missing curl skips instead of failing).
set -u
. "$(cd "$(dirname "$0")" && pwd)/peerlib.sh"

CURL=${CURL:-curl}
PROTOC=${PROTOC:-protoc}
PYTHON=${PYTHON:-python3}
INTEROP=$top_builddir/tools/tri-interop-server
PROTO_DIR=$peers_here/proto

command -v "$CURL" >/dev/null 2>&1 || missing "$CURL not found (Debian: curl)"
"$CURL" --version | grep -qi 'http2' || missing "$CURL has no HTTP/2 support"
command -v "$PROTOC" >/dev/null 2>&1 || missing "$PROTOC not found (Debian: protobuf-compiler)"
command -v "$PYTHON" >/dev/null 2>&1 || missing "$PYTHON not found"
[ -x "$TRI_PEER" ] || missing "$TRI_PEER not built (make -C test peers/tri-peer)"
[ -x "$INTEROP" ] || missing "$INTEROP not built (make -C tools)"

start_server tri-server "$TRI_PEER" server; tri_pid=$pid; tri_port=$port
start_server interop-server "$INTEROP" --port=0; io_pid=$pid; io_port=$port
echo "# tri-peer on :$tri_port, tri-interop-server on :$io_port; $("$CURL" --version | head -n 1)"

URL=http://127.0.0.1:$tri_port/tri.peer.v1.PeerService/Unary

ok() { echo "PASS $1${2:+ ($2)}"; passed=$((passed + 1)); }
ko() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

# post NAME HTTPFLAG CONTENT-TYPE BODYFILE URL: sets $status, $ctype;
# the body is in $peer_work/resp.
post() {
  rm -f "$peer_work/resp" "$peer_work/hdr"
  status=$("$CURL" -sS --max-time 5 "$2" -X POST -H "content-type: $3" \
    --data-binary @"$4" -D "$peer_work/hdr" -o "$peer_work/resp" \
    -w '%{http_code}' "$5" 2>"$peer_work/curl.err")
  ctype=$(sed -n 's/^[Cc]ontent-[Tt]ype: *\([^;\r]*\).*/\1/p' "$peer_work/hdr" | tail -n 1)
  if [ -z "$status" ] || [ "$status" = 000 ]; then
    status="000 (curl: $(tr '\n' ' ' <"$peer_work/curl.err"))"
  fi
  touch "$peer_work/resp"
}

# jfields FILE: sets c, m, p, d to the fields code, message, payload,
# data of a JSON body ("<not JSON>" in c when it is not JSON).
jfields() {
  eval "$("$PYTHON" -c 'import json,shlex,sys
try:
    o = json.load(open(sys.argv[1]))
    if not isinstance(o, dict):
        raise ValueError
except Exception:
    o = {"code": "<not JSON>"}
for k, v in (("c", "code"), ("m", "message"), ("p", "payload"), ("d", "data")):
    print("%s=%s" % (k, shlex.quote(str(o.get(v, "")))))' "$1")"
}

encode() { # text > file
  printf '%s\n' "$1" | "$PROTOC" -I"$PROTO_DIR" --encode=tri.peer.v1.PeerRequest \
    tri/peer/v1/peer.proto > "$2"
}

names="ok canceled unknown invalid_argument deadline_exceeded not_found
already_exists permission_denied resource_exhausted failed_precondition
aborted out_of_range unimplemented internal unavailable data_loss
unauthenticated"
http_of() { # gRPC code -> HTTP status (the Triple spec's table, §3.1)
  n=$1
  set -- 200 408 500 400 408 404 409 403 429 412 409 400 404 500 503 500 401
  shift "$n"; echo "$1"
}
name_of() { # gRPC code -> the error body's code name
  n=$1
  set -- $names
  shift "$n"; echo "$1"
}

for hv in http1.1 http2-prior-knowledge; do
  h=${hv%%-*}
  # --- success, JSON
  printf '%s' '{"payload":"hello from curl","data":"AAEC/w=="}' > "$peer_work/req.json"
  post x "--$hv" application/json "$peer_work/req.json" "$URL"
  jfields "$peer_work/resp"
  if [ "$status" = 200 ] && [ "$ctype" = application/json ] &&
     [ "$p" = "hello from curl" ] && [ "$d" = "AAEC/w==" ]; then
    ok "curl $h json ok" "200 $(head -c 120 "$peer_work/resp")"
  else
    ko "curl $h json ok" "HTTP $status, content-type '$ctype', body '$(head -c 200 "$peer_work/resp")'"
  fi
  # --- success, protobuf
  encode 'payload: "hello from curl" data: "\000\001\002\377"' "$peer_work/req.pb"
  post x "--$hv" application/proto "$peer_work/req.pb" "$URL"
  dec=$("$PROTOC" -I"$PROTO_DIR" --decode=tri.peer.v1.PeerResponse \
          tri/peer/v1/peer.proto < "$peer_work/resp" 2>&1 | tr '\n' ' ')
  case "$status $ctype $dec" in
    "200 application/proto "*'payload: "hello from curl"'*'data: "\000\001\002\377"'*)
      ok "curl $h proto ok" "200, $dec" ;;
    *) ko "curl $h proto ok" "HTTP $status, content-type '$ctype', decoded: $dec" ;;
  esac
  # --- every error code, for JSON and for protobuf requests (the error
  # body is JSON whatever the request's codec)
  for codec in json proto; do
    code=1
    while [ $code -le 16 ]; do
      name=$(name_of $code); want=$(http_of $code)
      if [ $codec = json ]; then
        printf '{"status":%d,"message":"curl code %d"}' $code $code > "$peer_work/req.body"
        ct=application/json
      else
        encode "status: $code message: \"curl code $code\"" "$peer_work/req.body"
        ct=application/proto
      fi
      post x "--$hv" $ct "$peer_work/req.body" "$URL"
      jfields "$peer_work/resp"
      if [ "$status" = "$want" ] && [ "$ctype" = application/json ] &&
         [ "$c" = "$name" ] && [ "$m" = "curl code $code" ]; then
        ok "curl $h $codec code-$code" "$status {code: $c, message: $m}"
      else
        ko "curl $h $codec code-$code" "expected HTTP $want application/json {code: $name, message: curl code $code}; got HTTP $status '$ctype', body '$(head -c 200 "$peer_work/resp")'"
      fi
      code=$((code + 1))
    done
  done
  # --- unknown content-type
  printf 'hello' > "$peer_work/req.txt"
  post x "--$hv" text/plain "$peer_work/req.txt" "$URL"
  if [ "$status" = 415 ]; then ok "curl $h 415" "text/plain refused 415"
  else ko "curl $h 415" "text/plain answered HTTP $status, expected 415"; fi
  # --- unknown method
  printf '{}' > "$peer_work/req.json"
  post x "--$hv" application/json "$peer_work/req.json" \
    "http://127.0.0.1:$tri_port/tri.peer.v1.PeerService/NoSuchMethod"
  jfields "$peer_work/resp"
  if [ "$status" = 404 ] && [ "$c" = unimplemented ]; then
    ok "curl $h unknown-method" "404 {code: unimplemented}"
  else
    ko "curl $h unknown-method" "expected HTTP 404 {code: unimplemented}; got HTTP $status, body '$(head -c 200 "$peer_work/resp")'"
  fi
  # --- the interop line
  printf '%s' '{"responseSize":8}' > "$peer_work/req.json"
  post x "--$hv" application/json "$peer_work/req.json" \
    "http://127.0.0.1:$io_port/grpc.testing.TestService/UnaryCall"
  body=$(cat "$peer_work/resp" 2>/dev/null)
  if [ "$status" = 200 ] && [ "$body" = '{"payload":{"body":"AAAAAAAAAAA="}}' ]; then
    ok "curl $h interop UnaryCall" "$body"
  else
    ko "curl $h interop UnaryCall" "expected 200 {\"payload\":{\"body\":\"AAAAAAAAAAA=\"}}; got HTTP $status, body '$(printf '%s' "$body" | head -c 200)'"
  fi
done

check_alive tri-server "$tri_pid"
check_alive interop-server "$io_pid"
summary
