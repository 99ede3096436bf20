#!/usr/bin/env bash
# Installs Debian's Dovecot IMAP server for the IMAP poller's tests and the
# intake benchmark, when it is not there yet. Only the binaries are used: the
# tests start their own Dovecot on a loopback port with a throwaway
# configuration, so the system service is never started (policy-rc.d or no
# init system). Run as root (CI runs as root).
set -euo pipefail

if [ -x /usr/sbin/dovecot ] && [ -e /usr/lib/dovecot/imap ]; then
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends dovecot-core dovecot-imapd >/dev/null
/usr/sbin/dovecot --version
