"""Where trial jobs run: ``slurm`` (sbatch through submitit, job arrays, one sacct per poll)
or ``local`` (subprocesses with GPU slots). Same small interface, see ``base.Backend``."""
from __future__ import annotations

import shutil
from typing import Any

from .base import Backend, BackendBusy, BackendError, JobRequest, JobState, JobStatus

__all__ = [
    "Backend",
    "BackendBusy",
    "BackendError",
    "JobRequest",
    "JobState",
    "JobStatus",
    "default_backend_name",
    "make_backend",
]


def default_backend_name() -> str:
    """``slurm`` if ``sbatch`` is on PATH, else ``local``."""
    return "slurm" if shutil.which("sbatch") else "local"


def make_backend(name: str, **options: Any) -> Backend:
    """``make_backend("local", gpus_available=2)``, ``make_backend("slurm", folder=..., options=SlurmOptions(...))``."""
    if name == "local":
        from .local import LocalBackend

        return LocalBackend(**options)
    if name == "slurm":
        from .slurm import SlurmBackend  # imports submitit: only when asked for

        return SlurmBackend(**options)
    raise ValueError(f"unknown backend {name!r}: expected 'slurm' or 'local'")
