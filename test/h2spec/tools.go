//go:build tools

// Package h2specpin only records the h2spec command as a dependency of
// this module, so that go.mod and go.sum pin it (see go.mod).
package h2specpin

import _ "github.com/summerwind/h2spec/cmd/h2spec"
