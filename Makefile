# ticketd: `make dev` runs the whole stack locally, `make test` runs every test.
GO       ?= go
BIN      := bin
PKGS     := ./...
# Fuzz targets run briefly in `make test`, each for FUZZTIME.
FUZZTIME ?= 5s

.PHONY: all build dev cluster test lint vet unit fuzz bench e2e faults cluster-test inngest deps clean

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

# The production shape on this machine, in the foreground (as root):
# PostgreSQL, Redis, inngest start, three replicas behind Postfix as the MX
# and an HTTP balancer, Dovecot, a relay sink. Ctrl-C stops every part.
cluster: deps build inngest
	$(BIN)/ticketd cluster

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

# The whole-stack test on the cluster: load through Postfix and the mailbox
# while a replica is killed and Inngest, Redis and PostgreSQL restart; it
# prints what it counted (also part of make test).
cluster-test: deps inngest
	$(GO) test -count=1 -v -timeout 20m -run 'TestCluster' ./e2e/ 2>&1 | grep -E 'cluster report:|^(--- |FAIL|ok)'
