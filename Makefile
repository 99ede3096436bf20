# ticketd: `make dev` runs the whole stack locally, `make test` runs every test.
GO       ?= go
BIN      := bin
PKGS     := ./...
# Fuzz targets run briefly in `make test`, each for FUZZTIME.
FUZZTIME ?= 5s

.PHONY: all build dev test lint vet unit fuzz bench e2e faults inngest deps clean

all: build

build:
	$(GO) build -o $(BIN)/ticketd ./cmd/ticketd

# The Inngest CLI (dev server and self-hosted server) from the Go module
# proxy; a separate module keeps its dependencies out of ticketd's go.mod.
inngest: $(BIN)/inngest

$(BIN)/inngest: tools/inngest/go.mod tools/inngest/go.sum
	cd tools/inngest && $(GO) build -o ../../$(BIN)/inngest github.com/inngest/inngest/cmd

dev: build inngest
	$(BIN)/ticketd dev

# What the tests need from the machine: PostgreSQL server binaries, Dovecot,
# Chromium. Installs what is missing (Debian, as root).
deps:
	scripts/install-test-deps.sh

test: deps inngest vet unit fuzz

vet:
	$(GO) vet $(PKGS)

# go vet, gofmt, staticcheck (fetched by version from the module proxy) and
# a go.mod that go mod tidy leaves alone; .ci/run runs it before the tests.
lint:
	scripts/lint.sh

unit:
	$(GO) test -race -timeout 30m $(PKGS)

fuzz:
	scripts/fuzz.sh $(FUZZTIME)

bench: build inngest
	scripts/bench.sh

clean:
	rm -rf $(BIN)

# The whole stack on loopback: PostgreSQL, the Inngest dev server, ticketd,
# Dovecot, smtplib, a capturing relay and the fake LLM (also part of make test).
e2e: deps inngest
	$(GO) test -count=1 -v -run 'TestWholeStack' ./e2e/

# Fault tests, each reporting what it saw (also part of make test).
faults: deps inngest
	scripts/faults.sh
