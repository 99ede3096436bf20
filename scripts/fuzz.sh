#!/usr/bin/env bash
# Runs every fuzz target of the module briefly (its seed corpus always runs
# with the unit tests). Usage: scripts/fuzz.sh [fuzztime]
set -euo pipefail
fuzztime=${1:-5s}
cd "$(dirname "$0")/.."
status=0
for file in $(git ls-files '*_test.go'); do
  pkg="./$(dirname "$file")"
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
    echo "fuzz $pkg $target ($fuzztime)"
    if ! go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" >/tmp/ticketd-fuzz.log 2>&1; then
      cat /tmp/ticketd-fuzz.log
      status=1
    fi
  done
done
exit $status
