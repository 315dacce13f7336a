#!/bin/bash
# One trial of benchmarks/slot_utilisation.py, the same script for hpc-tune and for the plain
# `sbatch --array` baseline: sleep L seconds, then report {"loss": X} by appending one JSON line
# to $HPC_TUNE_RESULT_FILE (hpc-tune's trial protocol).
#
#   slot_trial.sh L X [TIMING_FILE]
#
# TIMING_FILE (optional) gets two lines, "start EPOCH TRIAL JOB" and "end EPOCH TRIAL JOB": the
# benchmark measures from them how long each GPU slot sat idle between two trials.
L=$1
X=$2
T=${3:-/dev/null}
job=${SLURM_ARRAY_JOB_ID:+${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}}
job=${job:-${SLURM_JOB_ID:-none}}
echo "start $(date +%s.%N) ${HPC_TUNE_TRIAL_ID:-?} $job" >> "$T"
sleep "$L"
printf '{"loss": %s}\n' "$X" >> "${HPC_TUNE_RESULT_FILE:?HPC_TUNE_RESULT_FILE is not set}"
echo "end $(date +%s.%N) ${HPC_TUNE_TRIAL_ID:-?} $job" >> "$T"
