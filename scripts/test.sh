#!/usr/bin/env bash
# The test command of the README, and what CI runs (.ci/run). It tests hpc-tune as a user
# gets it: builds the wheel, installs it with every extra (`[all]`) into a virtual
# environment created fresh for this run (no -e, no system site-packages, nothing from an
# earlier run), brings up the one-node Slurm cluster and the three-node one beside it
# (`multi up`) and installs Debian's Chromium (for the
# report's browser tests) when this machine can (root on Debian), and runs pytest with that
# environment against the installed package. In CI (CI=true) a cluster or browser that cannot
# be had fails the run; elsewhere those tests skip and say how to get them. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d "${TMPDIR:-/tmp}/hpc-tune-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
python="$work/venv/bin/python"
pip=("$python" -m pip --quiet --disable-pip-version-check)
"${pip[@]}" wheel --no-deps --wheel-dir "$work/dist" .
wheel=$(ls "$work"/dist/hpc_tune-*.whl)
"${pip[@]}" install "$wheel[all]"
echo "test.sh: testing $(basename "$wheel") installed in a fresh environment ($work/venv)" >&2

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    # `multi up` brings up the one-node cluster first, then the three-node one beside it
    # (tests marked slurm_multinode: node faults).
    if ! scripts/slurm-cluster.sh multi up; then
        echo "test.sh: the Slurm clusters did not come up (see above)" >&2
        [ "${CI:-}" = true ] && exit 1
    fi
    if ! scripts/install-chromium.sh; then
        echo "test.sh: Chromium did not install (see above)" >&2
        [ "${CI:-}" = true ] && exit 1
    fi
elif [ "${CI:-}" = true ]; then
    echo "test.sh: CI needs the real Slurm cluster, which needs root and apt-get" >&2
    exit 1
else
    echo "test.sh: not root on Debian: Slurm tests will skip (start a cluster with: sudo scripts/slurm-cluster.sh up)" >&2
fi

# PYTHONSAFEPATH: `python -m ...` (pytest here, hpc_tune in the tests' subprocesses and in
# controller jobs, which inherit this environment) does not put the current directory, the
# source tree, ahead of the installed package. HPC_TUNE_WHEEL: the wheel test checks it.
export PYTHONSAFEPATH=1 HPC_TUNE_WHEEL="$wheel" HPC_TUNE_TEST_VENV="$work/venv"
export PATH="$work/venv/bin:$PATH"
set +e
"$python" -m pytest -p no:cacheprovider "$@"
rc=$?
exit $rc
