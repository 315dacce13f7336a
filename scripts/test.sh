#!/usr/bin/env bash
# The test command of the README: installs hpc-tune with its test extras, brings up the
# one-node Slurm cluster and the three-node one beside it when this machine can run them
# (root on Debian), and runs pytest.
# In CI (CI=true) a cluster that cannot be started fails the run; elsewhere the Slurm
# tests skip and say how to start one.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    # `multi up` brings up the one-node cluster first, then the three-node one beside it
    # (tests marked slurm_multinode: node faults).
    if ! scripts/slurm-cluster.sh multi up; then
        echo "test.sh: the Slurm clusters did not come up (see above)" >&2
        [ "${CI:-}" = true ] && exit 1
    fi
elif [ "${CI:-}" = true ]; then
    echo "test.sh: CI needs the real Slurm cluster, which needs root and apt-get" >&2
    exit 1
else
    echo "test.sh: not root on Debian: Slurm tests will skip (start a cluster with: sudo scripts/slurm-cluster.sh up)" >&2
fi

exec python3 -m pytest "$@"
