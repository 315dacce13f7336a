"""Every file of a study, and a trial's environment: named here and nowhere else.

As submitit's ``JobPaths`` owns a job's files, ``StudyPaths`` owns a study directory's and
``TrialPaths`` a trial folder's::

    <state dir>/<study id>/
        spec.yml                 frozen copy of the submitted file
        journal.jsonl            every event (hpc_tune.journal); journal.lock guards it
        snapshot.pickle          a cache of the journal's fold (safe to delete)
        controller/              lease.json, controller.log, controller.sbatch, the job's logs
        slurm/                   submitit's folders of the trial jobs (<job id>/...)
        trials/<id>/             the trial protocol's files (hpc_tune.protocol), checkpoints/,
                                 the local backend's job.json, registry and logs
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from functools import cached_property
from typing import Dict, List, Optional

from .protocol import (
    ATTEMPT_ENV,
    CHECKPOINT_DIR_ENV,
    CHECKPOINT_SUBDIR,
    EXIT_RECORD,
    RESULT_FILE,
    RESULT_FILE_ENV,
    STARTED_RECORD,
    STUDY_DIR_ENV,
    TRIAL_DIR_ENV,
    TRIAL_ID_ENV,
)

JOURNAL_FILE = "journal.jsonl"
LOCK_FILE = "journal.lock"
SNAPSHOT_FILE = "snapshot.pickle"
SPEC_FILE = "spec.yml"
CONTROLLER_DIR = "controller"
TRIALS_DIR = "trials"
SLURM_DIR = "slurm"


@dataclass(frozen=True)
class TrialPaths:
    """The folder of one trial and the files in it."""

    root: str

    @cached_property  # joined once: a controller asks for 1,000 trials' files every cycle
    def result(self) -> str:
        return os.path.join(self.root, RESULT_FILE)

    @cached_property
    def checkpoints(self) -> str:
        return os.path.join(self.root, CHECKPOINT_SUBDIR)

    @cached_property
    def exit_record(self) -> str:
        return os.path.join(self.root, EXIT_RECORD)

    @cached_property
    def started_record(self) -> str:
        return os.path.join(self.root, STARTED_RECORD)

    def own_logs(self) -> List[str]:
        """The trial's own output files (the local backend's stdout/stderr, anything *.log)."""
        return sorted(p for pattern in ("*.out", "*.err", "*.log") for p in glob.glob(os.path.join(self.root, pattern)))


@dataclass(frozen=True)
class StudyPaths:
    """The directory of one study and the files in it."""

    root: str

    @property
    def name(self) -> str:
        """The directory's own name (the study id of a study made by ``create_study``)."""
        return os.path.basename(os.path.normpath(self.root))

    @property
    def journal(self) -> str:
        return os.path.join(self.root, JOURNAL_FILE)

    @property
    def lock(self) -> str:
        return os.path.join(self.root, LOCK_FILE)

    @property
    def snapshot(self) -> str:
        return os.path.join(self.root, SNAPSHOT_FILE)

    @property
    def spec(self) -> str:
        return os.path.join(self.root, SPEC_FILE)

    @property
    def controller_dir(self) -> str:
        return os.path.join(self.root, CONTROLLER_DIR)

    @property
    def lease(self) -> str:
        return os.path.join(self.root, CONTROLLER_DIR, "lease.json")

    @property
    def controller_log(self) -> str:
        return os.path.join(self.root, CONTROLLER_DIR, "controller.log")

    @property
    def controller_script(self) -> str:
        return os.path.join(self.root, CONTROLLER_DIR, "controller.sbatch")

    @property
    def slurm_dir(self) -> str:
        """submitit's folder for the trial jobs."""
        return os.path.join(self.root, SLURM_DIR)

    def trial(self, trial_id: int) -> TrialPaths:
        return TrialPaths(os.path.join(self.root, TRIALS_DIR, str(trial_id)))

    def scheduler_logs(self, job_id: str) -> List[str]:
        """submitit's log files of one trial job (``<job id>_<task>_log.out/err``)."""
        return sorted(glob.glob(os.path.join(self.slurm_dir, "**", f"{job_id}_*_log.*"), recursive=True))

    def trial_env(self, trial_id: int, attempt: int, checkpoints: Optional[str] = None) -> Dict[str, str]:
        """The trial protocol's environment of one attempt of a trial. ``checkpoints``: the
        folder it saves to and resumes from (default its own; a trial that continues another's
        work gets that trial's)."""
        trial = self.trial(trial_id)
        return {
            STUDY_DIR_ENV: self.root,
            TRIAL_ID_ENV: str(trial_id),
            TRIAL_DIR_ENV: trial.root,
            RESULT_FILE_ENV: trial.result,
            CHECKPOINT_DIR_ENV: checkpoints or trial.checkpoints,
            ATTEMPT_ENV: str(attempt),
        }

    def is_study(self) -> bool:
        return os.path.isfile(self.journal)
