#!/usr/bin/env bash
# Debian's Chromium for the report's browser tests (tests/report/test_browser.py), installed
# as the Slurm cluster is: from Debian's packages, only when it is missing. Idempotent.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium.sh: needs root and apt-get (Debian); the browser tests will skip" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true  # a stale list still installs more often than not; the install below decides
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null
