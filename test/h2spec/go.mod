// Pins h2spec and its dependencies for test/h2spec/install-h2spec.sh.
// v2.2.1 is the newest h2spec the Go module proxy serves (later tags
// carry a go.mod without the /v2 suffix and are not served); the
// dependency versions are the ones h2spec's own Gopkg.lock names, and
// golang.org/x/sys is held at v0.1.0 so Debian 12's Go 1.19 builds it.
module libtriplestream.invalid/h2spec-pin

go 1.19

require github.com/summerwind/h2spec v2.2.1+incompatible

require (
	github.com/fatih/color v0.0.0-20161025120501-bf82308e8c85 // indirect
	github.com/inconshreveable/mousetrap v1.0.0 // indirect
	github.com/mattn/go-colorable v0.1.0 // indirect
	github.com/mattn/go-isatty v0.0.4 // indirect
	github.com/spf13/cobra v0.0.0-20170118185516-dc208f4211e7 // indirect
	github.com/spf13/pflag v1.0.3 // indirect
	golang.org/x/net v0.0.0-20161104230106-55a3084c9119 // indirect
	golang.org/x/sys v0.1.0 // indirect
)
