"""A study directory: creating one, finding one by id, and its frozen spec.

The files in it are named by ``hpc_tune.paths.StudyPaths``; what happened in it is the
journal's fold (``hpc_tune.journal``).
"""
from __future__ import annotations

import dataclasses
import os
import re
import secrets
import shutil
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from .errors import UserError
from .journal import Journal, StudyView
from .journal.events import StudyCreated
from .paths import StudyPaths

if TYPE_CHECKING:
    from .spec import Spec


def default_state_dir() -> str:
    """``$HPC_TUNE_STATE_DIR``, else ``./hpc-tune-studies`` where the user runs from
    (on a cluster that is the shared filesystem every node sees)."""
    return os.environ.get("HPC_TUNE_STATE_DIR") or os.path.join(os.getcwd(), "hpc-tune-studies")


def new_study_id(spec_path: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", os.path.splitext(os.path.basename(spec_path))[0]).strip("-") or "study"
    return f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def find_study(ref: str, state_dir: Optional[str] = None) -> str:
    """A study directory from an id (under the state dir) or a path."""
    if StudyPaths(ref).is_study():
        return os.path.abspath(ref)
    base = state_dir or default_state_dir()
    path = os.path.join(base, ref)
    if StudyPaths(path).is_study():
        return path
    matches = [d for d in list_studies(base) if os.path.basename(d).startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UserError(f"'{ref}' matches several studies: {', '.join(os.path.basename(m) for m in matches)}")
    raise UserError(f"no study '{ref}' under {base} (set --state-dir or HPC_TUNE_STATE_DIR, or give the path)")


def list_studies(state_dir: str) -> List[str]:
    try:
        names = sorted(os.listdir(state_dir))
    except FileNotFoundError:
        return []
    return [os.path.join(state_dir, n) for n in names if StudyPaths(os.path.join(state_dir, n)).is_study()]


def create_study(spec_path: str, spec: Any, state_dir: str, *, backend: str, seed: int,
                 slurm: Optional[Dict[str, Any]] = None, poll_interval: float = 30.0) -> str:
    """Make the study directory: a frozen copy of the file and the journal's first
    event. Returns the directory."""
    from . import __version__

    study_id = new_study_id(spec_path)
    study_dir = os.path.join(os.path.abspath(state_dir), study_id)
    paths = StudyPaths(study_dir)
    os.makedirs(paths.controller_dir, exist_ok=True)
    shutil.copyfile(spec_path, paths.spec)
    metric = spec.metric
    Journal(study_dir).append(StudyCreated(
        id=study_id, seed=seed, file=os.path.abspath(spec_path), cwd=os.getcwd(),
        base_dir=os.path.dirname(os.path.abspath(spec_path)), backend=backend, slurm=dict(slurm or {}),
        metric=metric.name if metric else None, optimization=metric.optimization if metric else None,
        poll_interval=poll_interval, version=__version__).to_json())
    return study_dir


def study_spec(view: StudyView) -> "Spec":
    """The frozen spec of a study, with the Slurm overrides given at submission."""
    from .spec import load_spec

    spec = load_spec(view.paths.spec, base_dir=view.info.get("base_dir"))
    overrides = view.info.get("slurm") or {}
    if overrides:
        if "extra" in overrides:
            overrides = {**overrides, "extra": tuple(spec.slurm.extra) + tuple(overrides["extra"])}
        spec = dataclasses.replace(spec, slurm=dataclasses.replace(spec.slurm, **overrides))
    return spec
