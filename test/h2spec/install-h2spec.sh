#!/bin/sh
# Install the pinned h2spec (HTTP/2 conformance tester) into DIR.
#
#   test/h2spec/install-h2spec.sh DIR
#
# Builds github.com/summerwind/h2spec/cmd/h2spec from the Go module proxy
# with the versions that go.mod and go.sum beside this script pin, and
# puts the binary at DIR/h2spec (GOBIN=DIR).  Idempotent: an h2spec in DIR
# that reports the pinned version is kept and nothing is fetched.
#
# Go: `go` on PATH, else /usr/local/go/bin/go, else (as root with apt-get)
# Debian's golang-go, whose Go 1.19 builds the pinned versions.
# The module cache is Go's default (GOPATH, ~/go).
set -eu

PIN=2.2.1 # keep in step with github.com/summerwind/h2spec in go.mod
STAMP="Version: $PIN (libtriplestream pin)"

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
dest=$(cd "$1" && pwd)

if [ -x "$dest/h2spec" ] &&
   [ "$("$dest/h2spec" --version 2>/dev/null)" = "$STAMP" ]; then
  echo "h2spec $PIN is already installed at $dest/h2spec"
  exit 0
fi

GO=$(command -v go || true)
if [ -z "$GO" ] && [ -x /usr/local/go/bin/go ]; then
  GO=/usr/local/go/bin/go
fi
if [ -z "$GO" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "no Go toolchain found; installing Debian's golang-go"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null
    GO=$(command -v go || true)
  fi
fi
if [ -z "$GO" ]; then
  echo "$0: no Go toolchain (go on PATH or /usr/local/go/bin/go);" \
       "install one (Debian: apt-get install golang-go) and run again" >&2
  exit 1
fi

echo "building h2spec $PIN with $("$GO" version) into $dest"
# GOTOOLCHAIN=local: build with this Go, never fetch another one.
# -mod=readonly: go.mod and go.sum are the pin; nothing may change them.
# CGO_ENABLED=0: h2spec is pure Go; no C compiler needed (Go 1.19 would
# otherwise want gcc for the net package, and CI runs this before the
# build tools are installed).
cd "$here"
GOBIN=$dest GOTOOLCHAIN=local CGO_ENABLED=0 \
  GOFLAGS="${GOFLAGS:-} -mod=readonly" \
  "$GO" install -ldflags "-X 'main.VERSION=$PIN' -X 'main.COMMIT=libtriplestream pin'" \
  github.com/summerwind/h2spec/cmd/h2spec

got=$("$dest/h2spec" --version 2>/dev/null || true)
if [ "$got" != "$STAMP" ]; then
  echo "$0: $dest/h2spec reports '$got', expected '$STAMP'" >&2
  exit 1
fi
echo "installed $dest/h2spec ($got)"
