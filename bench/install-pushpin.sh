#!/bin/sh
# Installs Pushpin 1.36 from Debian (bookworm) for the side-by-side benchmark and for the tests
# that compare against it. Idempotent: does nothing when pushpin, condure and zurl are present.
#
# The package ships a system service whose config expects a system-wide zurl under
# /var/run/zurl; bench/pushpin.ts does not use that config at all: it writes a private config
# (own rundir, own ports, zurl launched by the Pushpin runner) under a temporary directory.
# The system service is never started (policy-rc.d in containers; we also do not enable it).
set -eu

have() { command -v "$1" >/dev/null 2>&1; }

if have pushpin && have condure && have zurl; then
  echo "pushpin already installed: $(pushpin --version 2>/dev/null | head -n1)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# pushpin pulls in condure (client connection manager) and zurl (outbound HTTP client, the way
# Pushpin reaches the origin); they are named so a partial install is completed too.
$SUDO apt-get install -y --no-install-recommends pushpin condure zurl

# Do not leave a system instance running (it would hold ports 7999/5560-5563).
if have systemctl && systemctl is-active --quiet pushpin 2>/dev/null; then
  $SUDO systemctl stop pushpin || true
fi

echo "installed: $(pushpin --version 2>/dev/null | head -n1)"
