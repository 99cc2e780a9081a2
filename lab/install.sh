#!/bin/sh
# Install the lab's system packages, only those missing (apt-get update once, only if needed).
set -eu
PACKAGES="docker.io busybox-static openssh-server docker-registry iproute2 curl util-linux"
# PostgreSQL 15 for the PostgreSQL task store's tests (lab/postgres.py runs a throwaway cluster).
PACKAGES="$PACKAGES postgresql"
# Headless Chromium and its WebDriver for the dashboard's browser tests (tests/browser).
PACKAGES="$PACKAGES chromium chromium-driver"
missing=""
for p in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "lab/install.sh: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
fi
mkdir -p /run/sshd
