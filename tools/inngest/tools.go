//go:build tools

// Package tools pins the Inngest CLI so that `make inngest` can build the
// dev server (`inngest dev`) and the self-hosted server (`inngest start`)
// from the Go module proxy, without its dependencies entering ticketd's
// own go.mod.
package tools

import _ "github.com/inngest/inngest/cmd"
