#!/usr/bin/env bash
# Measures ticketd's mail intake and prints one report (see bench/intake):
# SMTP rate and end-of-DATA-to-250 latency for 1, 8 and 32 clients with 1 KB
# and 100 KB mails against a bare go-smtp + INSERT baseline, peak RSS, memory
# with 25 MB mails on 4 connections, and the IMAP rate from Dovecot against
# the SMTP rate for the same mails. Arguments go to the program, e.g.
# -duration 10s or -only smtp. Needs PostgreSQL server binaries and Dovecot
# (installed here when missing and running as root).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/sbin/dovecot ] && [ "$(id -u)" = 0 ]; then
	scripts/install-dovecot.sh
fi
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/bench-intake" ./bench/intake
"$bin/bench-intake" "$@"
