#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests of the admin web, when it
# is not there yet. Run as root (CI runs as root).
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
