#!/usr/bin/env bash
# Breaks one part of the running stack at a time and reports what each test
# saw: SIGKILL of ticketd under SMTP load, PostgreSQL restarted under load,
# the Inngest dev server restarted, the relay down for a minute, the LLM
# answering garbage or nothing. The same tests run in `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
status=0
go test -count=1 -v -timeout 20m -run 'TestFault' ./e2e/ >"$out" 2>&1 || status=$?
grep -E 'fault report:|^(--- |FAIL|ok)' "$out" | sed -E 's/^ *faults_test.go:[0-9]+: //'
[ $status -eq 0 ] || { echo "faults: a fault test failed; full output in $out" >&2; exit $status; }
