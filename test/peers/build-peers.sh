#!/bin/sh
# Build the peers of the peer tests (test/peers/) into a cache directory,
# once: the dubbo-go peer (Go, from the Go module proxy with the versions
# dubbogo/go.mod and go.sum pin) and the dubbo-js peer (npm ci from
# dubbojs/package-lock.json, its code generated with protoc and the
# plugins the lock file pins) and the grpc-js server of
# test/keepalive/run_keepalive_js.sh (npm ci from
# test/keepalive/js/package-lock.json).
#
#   test/peers/build-peers.sh [--only=dubbogo|dubbojs|grpcjs] [DIR]
#
# DIR: default $TRI_PEER_DIR, else $HOME/.cache/libtriplestream-peers.
# Writes DIR/dubbogo/dubbogo-peer, DIR/dubbojs/{peer.mjs,gen,node_modules}
# and DIR/grpcjs/{js_ka_server.js,node_modules}.
# Nothing is written into the source tree (make distcheck's is read-only).
# Each peer is skipped when DIR/<peer>/.stamp holds the hash of its
# sources, peer.proto and the toolchain version; concurrent runs (make -j
# check) wait for each other on DIR/.lock.  .ci/run calls it once before
# the tests; the test scripts call it themselves, so the README's test
# command alone works too.
#
# Tools: Go (go on PATH or /usr/local/go/bin/go; GOTOOLCHAIN=local, the
# machine's Go; dubbo-go v3.3.1 needs Go >= 1.24), node and npm, protoc.
set -eu

only=
dir=
for a in "$@"; do
  case $a in
    --only=*) only=${a#--only=} ;;
    -*) echo "usage: $0 [--only=dubbogo|dubbojs|grpcjs] [DIR]" >&2; exit 2 ;;
    *) dir=$a ;;
  esac
done
: "${dir:=${TRI_PEER_DIR:-${HOME:-/tmp}/.cache/libtriplestream-peers}}"
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

hash_of() { # files...
  cat "$@" | sha256sum | cut -d' ' -f1
}

build_dubbogo() {
  GO=$(command -v go || true)
  if [ -z "$GO" ] && [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go; fi
  if [ -z "$GO" ]; then
    echo "build-peers: no Go toolchain (go on PATH or /usr/local/go/bin/go)" >&2
    return 1
  fi
  out=$dir/dubbogo
  h=$( { hash_of "$here/dubbogo/go.mod" "$here/dubbogo/go.sum" \
          "$here/dubbogo/main.go" "$here/dubbogo/peerpb/peer.pb.go" \
          "$here/dubbogo/peerpb/peer.triple.go"; "$GO" version; } | sha256sum | cut -d' ' -f1)
  if [ -x "$out/dubbogo-peer" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$h" ]; then
    echo "build-peers: dubbogo-peer is up to date ($out)"
    return 0
  fi
  mkdir -p "$out"
  rm -f "$out/.stamp"
  echo "build-peers: building dubbogo-peer with $("$GO" version)"
  # -mod=readonly: go.mod/go.sum are the pin; nothing may change them
  # (and the source tree may be read-only).  -trimpath: no build paths.
  (cd "$here/dubbogo" && GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -mod=readonly" \
     CGO_ENABLED=0 "$GO" build -trimpath -buildvcs=false -o "$out/dubbogo-peer.tmp" .)
  mv -f "$out/dubbogo-peer.tmp" "$out/dubbogo-peer"
  echo "$h" > "$out/.stamp"
  echo "build-peers: built $out/dubbogo-peer"
}

build_dubbojs() {
  for t in node npm protoc; do
    command -v $t >/dev/null 2>&1 || {
      echo "build-peers: $t not found (Debian: nodejs npm protobuf-compiler)" >&2
      return 1; }
  done
  out=$dir/dubbojs
  h=$( { hash_of "$here/dubbojs/package.json" "$here/dubbojs/package-lock.json" \
          "$here/dubbojs/peer.mjs" "$here/proto/tri/peer/v1/peer.proto"; \
          node --version; protoc --version; } | sha256sum | cut -d' ' -f1)
  if [ -f "$out/peer.mjs" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$h" ]; then
    echo "build-peers: dubbojs peer is up to date ($out)"
    return 0
  fi
  mkdir -p "$out"
  rm -f "$out/.stamp"
  cp "$here/dubbojs/package.json" "$here/dubbojs/package-lock.json" "$out/"
  echo "build-peers: npm ci in $out (node $(node --version), npm $(npm --version))"
  (cd "$out" && npm ci --no-audit --no-fund --loglevel=error)
  rm -rf "$out/gen"
  mkdir -p "$out/gen"
  protoc -I"$here/proto" \
    --plugin=protoc-gen-es="$out/node_modules/.bin/protoc-gen-es" \
    --es_out="$out/gen" --es_opt=target=js \
    --plugin=protoc-gen-apache-dubbo-es="$out/node_modules/.bin/protoc-gen-apache-dubbo-es" \
    --apache-dubbo-es_out="$out/gen" --apache-dubbo-es_opt=target=js \
    tri/peer/v1/peer.proto
  cp "$here/dubbojs/peer.mjs" "$out/peer.mjs"
  echo "$h" > "$out/.stamp"
  echo "build-peers: dubbojs peer ready in $out"
}

build_grpcjs() {
  for t in node npm; do
    command -v $t >/dev/null 2>&1 || {
      echo "build-peers: $t not found (Debian: nodejs npm)" >&2
      return 1; }
  done
  ka=$here/../keepalive
  out=$dir/grpcjs
  h=$( { hash_of "$ka/js/package.json" "$ka/js/package-lock.json" \
          "$ka/js_ka_server.js"; node --version; } | sha256sum | cut -d' ' -f1)
  if [ -f "$out/js_ka_server.js" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$h" ]; then
    echo "build-peers: grpcjs server is up to date ($out)"
    return 0
  fi
  mkdir -p "$out"
  rm -f "$out/.stamp"
  cp "$ka/js/package.json" "$ka/js/package-lock.json" "$out/"
  echo "build-peers: npm ci in $out (node $(node --version), npm $(npm --version))"
  (cd "$out" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$ka/js_ka_server.js" "$out/js_ka_server.js"
  echo "$h" > "$out/.stamp"
  echo "build-peers: grpcjs server ready in $out"
}

run() {
  case ${only:-all} in
    dubbogo) build_dubbogo ;;
    dubbojs) build_dubbojs ;;
    grpcjs) build_grpcjs ;;
    all) build_dubbogo && build_dubbojs && build_grpcjs ;;
    *) echo "build-peers: --only must be dubbogo, dubbojs or grpcjs" >&2; exit 2 ;;
  esac
}

if command -v flock >/dev/null 2>&1; then
  exec 9>"$dir/.lock"
  flock 9
fi
run
