#!/usr/bin/env bash
# Installs what ticketd's tests need and the machine lacks: PostgreSQL server
# binaries, Dovecot (IMAP tests) and Chromium (browser tests). Debian only;
# needs root for apt-get. Does nothing when everything is there.
set -euo pipefail

missing=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
  missing+=(postgresql)
fi
[ -x /usr/sbin/dovecot ] || missing+=(dovecot-imapd)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# Readable text in the browser tests' screenshots.
[ -d /usr/share/fonts/truetype/dejavu ] || missing+=(fonts-dejavu-core)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "ticketd tests need: ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts services it installs; the tests run their own servers.
if [ -x /usr/sbin/dovecot ] && pgrep -x dovecot >/dev/null; then
  /usr/sbin/dovecot stop 2>/dev/null || pkill -x dovecot || true
fi
if pgrep -f "/usr/lib/postgresql/.*/bin/postgres -D /var/lib" >/dev/null; then
  pg_ctlcluster --mode fast "$(ls /usr/lib/postgresql | sort -n | tail -1)" main stop 2>/dev/null || true
fi
