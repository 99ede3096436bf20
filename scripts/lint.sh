#!/usr/bin/env bash
# make lint: go vet, gofmt, staticcheck and an untidy go.mod, each failing the
# run with what it found.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
STATICCHECK=honnef.co/go/tools/cmd/staticcheck@v0.8.2
status=0

echo "lint: go vet"
$GO vet ./... || status=1

echo "lint: gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"
	echo "$unformatted"
	status=1
fi

echo "lint: staticcheck"
$GO run $STATICCHECK ./... || status=1

echo "lint: go mod tidy"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp go.mod go.sum "$tmp/"
$GO mod tidy
if ! cmp -s go.mod "$tmp/go.mod" || ! cmp -s go.sum "$tmp/go.sum"; then
	echo "go mod tidy changes go.mod or go.sum:"
	diff -u "$tmp/go.mod" go.mod || true
	cp "$tmp/go.mod" "$tmp/go.sum" .
	status=1
fi

exit $status
