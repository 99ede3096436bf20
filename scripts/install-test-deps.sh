#!/usr/bin/env bash
# Installs what ticketd's tests need and the machine lacks: PostgreSQL server
# binaries, Dovecot (IMAP tests), Chromium (browser tests), and Postfix and
# Redis (the cluster: Postfix as the MX in front of the replicas, Redis for
# the self-hosted Inngest). Debian only; needs root for apt-get. Does nothing
# when everything is there.
#
# Only the binaries are used: the tests and `ticketd cluster` start their own
# servers with throwaway configurations on loopback ports. So no service the
# packages bring may start: Postfix is installed with "No configuration" (no
# /etc/postfix/main.cf, so no system MTA on port 25), services are kept from
# starting while installing, and any that did are stopped.
set -euo pipefail

missing=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
  missing+=(postgresql)
fi
[ -x /usr/sbin/dovecot ] || missing+=(dovecot-imapd)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# Readable text in the browser tests' screenshots.
[ -d /usr/share/fonts/truetype/dejavu ] || missing+=(fonts-dejavu-core)
[ -x /usr/sbin/postfix ] || missing+=(postfix)
[ -x /usr/bin/redis-server ] || missing+=(redis-server)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "ticketd tests need: ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Postfix without a system configuration: its package then starts nothing.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
# invoke-rc.d asks policy-rc.d whether a package may start its service; 101
# says no. Put one in place for the installation unless the machine has its
# own (containers usually do).
policy=/usr/sbin/policy-rc.d
own_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  own_policy=1
fi
status=0
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
if [ -n "$own_policy" ]; then
  rm -f "$policy"
fi
[ $status -eq 0 ] || exit $status
# Whatever started anyway (an init system that ignores policy-rc.d) stops:
# the tests run their own servers.
if [ -x /usr/sbin/dovecot ] && pgrep -x dovecot >/dev/null; then
  /usr/sbin/dovecot stop 2>/dev/null || pkill -x dovecot || true
fi
if pgrep -f "/usr/lib/postgresql/.*/bin/postgres -D /var/lib" >/dev/null; then
  pg_ctlcluster --mode fast "$(ls /usr/lib/postgresql | sort -n | tail -1)" main stop 2>/dev/null || true
fi
if [ -e /etc/postfix/main.cf ] && /usr/sbin/postfix status >/dev/null 2>&1; then
  /usr/sbin/postfix stop >/dev/null 2>&1 || true
fi
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  for unit in postfix redis-server dovecot; do
    systemctl disable --now "$unit" >/dev/null 2>&1 || true
  done
fi
if [ -s /run/redis/redis-server.pid ]; then
  kill "$(cat /run/redis/redis-server.pid)" 2>/dev/null || true
fi
