#!/usr/bin/env python
"""The "light job" variant of benchmarks/slot_utilisation.py: what a trial job would cost if
the callable submitit pickles (``TrialJob``) lived in a module that imports only submitit and
``hpc_tune.trial``.

``TrialJob`` is defined in ``hpc_tune/backends/slurm.py``, so unpickling it inside every trial
job imports that module, which imported ``hpc_tune.spec.model`` -> ``hpc_tune.space`` -> numpy
and scipy.stats until commit 8789ed9: seconds per job on a loaded 2-core node, while the GPU
slot sat idle. This variant measured the fix before it landed; since then it should measure
the same as plain hpc-tune (``slot_utilisation.py --light-variant``).

``LightTrialJob`` below is a copy of ``TrialJob`` (same behaviour, same signals, same exit
records) whose module imports nothing heavy. Run as a script, this file is ``hpc-tune`` with
``hpc_tune.backends.slurm.TrialJob`` replaced by it; nothing in the library is changed:

    PYTHONPATH=benchmarks python benchmarks/slot_lightjob.py submit FILE --backend slurm --foreground

(the trial jobs inherit PYTHONPATH through sbatch, so they can unpickle ``slot_lightjob``).
"""
from __future__ import annotations

import logging
import signal
import sys
from typing import List, Mapping

import submitit.helpers
from submitit.core.utils import UncompletedJobError
from submitit.slurm.slurm import SlurmJobEnvironment

from hpc_tune.trial import run_trial

log = logging.getLogger(__name__)


class LightTrialJob(submitit.helpers.Checkpointable):
    """``hpc_tune.backends.slurm.TrialJob``, defined in a module that imports little."""

    def __init__(self, command: str, env: Mapping[str, str], trial_dir: str, cwd: str) -> None:
        self.command = command
        self.env = dict(env)
        self.trial_dir = trial_dir
        self.cwd = cwd

    def __call__(self) -> int:
        preempt = getattr(signal, "SIG" + SlurmJobEnvironment.USR_SIG)
        submitit_handler = signal.getsignal(preempt)

        def after_signal(exit_code: int, received: List[str]) -> bool:
            if "SIGTERM" in received or preempt.name not in received or not callable(submitit_handler):
                return False
            try:
                submitit_handler(preempt, None)
            except UncompletedJobError:
                return True
            except Exception:
                log.exception("requeue failed; leaving the outcome to Slurm")
            return False

        code = run_trial(self.command, self.env, self.trial_dir, self.cwd, after_signal=after_signal)
        if code:
            raise SystemExit(code)
        return 0


def main() -> int:
    import slot_lightjob  # this file as a module, so that pickles name `slot_lightjob.LightTrialJob`

    import hpc_tune.backends.slurm as slurm_backend
    from hpc_tune.cli import main as cli_main

    slurm_backend.TrialJob = slot_lightjob.LightTrialJob  # type: ignore[misc]
    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
