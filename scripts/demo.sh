#!/usr/bin/env bash
# The example command of the README: installs hpc-tune (not editable) into .venv of this
# clone, runs the Hyperband example study end to end, on Slurm when a cluster answers, else
# on the local executor, and prints the best trial. Extra arguments go to `hpc-tune submit`.
# Afterwards `. .venv/bin/activate` puts this hpc-tune on the PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check .
export PATH="$PWD/.venv/bin:$PATH"

config=${HPC_TUNE_DEMO_CONFIG:-configs/hyperband_digits.yml}
hpc-tune plan "$config"
echo
if command -v sbatch >/dev/null 2>&1 && sinfo -h >/dev/null 2>&1 && sacct -n -X -S now >/dev/null 2>&1; then
    echo "Slurm answers: the controller and every trial run as Slurm jobs"
    exec hpc-tune submit "$config" --backend slurm --poll-interval 10 --wait "$@"
else
    echo "no Slurm here: running on the local executor"
    exec hpc-tune submit "$config" --backend local "$@"
fi
