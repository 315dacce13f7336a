"""Where a trial's checkpoints live, and the copies and deletions PBT needs.

Two ways a trial starts from another one's checkpoint (``meta["resume_from"]``):

* **A chain** (Hyperband with ``resume``, ASHA's promotions): a configuration goes on
  training, one rung after the other, and only ever one trial of the chain runs at a
  time. Every trial of the chain uses the checkpoint folder of the chain's first trial,
  so a promotion continues exactly where the rung below stopped, without a copy.
* **A copy** (PBT): several trials may start from the same checkpoint (a member's own
  next interval and the bottom members that exploit it), while its owner's line goes
  on training. The controller copies the source's checkpoint folder into the new
  trial's own folder before submitting it, so nothing a trial writes can change what
  another one copies. The copy goes to a temporary folder renamed into place, so a
  crash leaves either no copy (made again on the next start) or a whole one, and a
  resubmission never copies over what the trial saved since.

``prune`` deletes the checkpoint folders no trial may start from any more
(``search.pbt.checkpoints_needed``), unless ``keep_checkpoints: all``.

Nothing here decides anything: the searchers say who starts from whom.
"""
from __future__ import annotations

import os
import shutil
from typing import Any, Callable, Iterable, Mapping, Optional, Set

CHECKPOINT_DIR = "checkpoints"  # inside a trial's folder


def _source(meta: Mapping[str, Any]) -> Optional[int]:
    v = meta.get("resume_from")
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def chain_root(trial_id: int, meta_of: Callable[[int], Optional[Mapping[str, Any]]]) -> int:
    """The first trial of ``trial_id``'s chain of ``resume_from`` links (itself if none).
    ``meta_of`` returns a trial's meta, or None for an unknown trial."""
    root, seen = trial_id, {trial_id}
    while True:
        meta = meta_of(root)
        up = _source(meta) if meta is not None else None
        if up is None or up in seen or meta_of(up) is None:
            return root
        seen.add(up)
        root = up


def copies(algorithm: Any) -> bool:
    """Whether the algorithm's trials start from a copy (PBT) rather than a chain."""
    from .spec.model import PbtConfig

    return isinstance(algorithm, PbtConfig)


def checkpoint_dir(trial_dir_of: Callable[[int], str], trial_id: int, algorithm: Any,
                   meta_of: Callable[[int], Optional[Mapping[str, Any]]]) -> str:
    """The checkpoint folder a trial is given (``HPC_TUNE_CHECKPOINT_DIR``)."""
    from .spec.model import AshaConfig, HyperbandConfig

    if isinstance(algorithm, (HyperbandConfig, AshaConfig)):
        return os.path.join(trial_dir_of(chain_root(trial_id, meta_of)), CHECKPOINT_DIR)
    return os.path.join(trial_dir_of(trial_id), CHECKPOINT_DIR)


def prepare(trial_dir_of: Callable[[int], str], trial_id: int, algorithm: Any,
            meta_of: Callable[[int], Optional[Mapping[str, Any]]]) -> str:
    """Create the trial's checkpoint folder (PBT: as a copy of its source's) and
    return it. Idempotent: an existing folder is the trial's own and is left alone."""
    target = checkpoint_dir(trial_dir_of, trial_id, algorithm, meta_of)
    if os.path.isdir(target):
        return target
    meta = meta_of(trial_id) or {}
    source = _source(meta)
    if copies(algorithm) and source is not None:
        src = os.path.join(trial_dir_of(source), CHECKPOINT_DIR)
        if not os.path.isdir(src):
            raise FileNotFoundError(f"trial {trial_id} starts from trial {source}'s checkpoint, but {src} "
                                    f"does not exist (deleted by hand?)")
        tmp = f"{target}.copying"
        shutil.rmtree(tmp, ignore_errors=True)  # a copy a crash interrupted
        shutil.copytree(src, tmp, symlinks=True)
        os.rename(tmp, target)
    else:
        os.makedirs(target, exist_ok=True)
    return target


def prune(trial_dir_of: Callable[[int], str], finished: Iterable[int], needed: Set[int],
          done: Set[int]) -> Set[int]:
    """Delete the checkpoint folders of the ``finished`` trials not ``needed``; ``done``
    holds the ids already handled (updated, and returned)."""
    for tid in finished:
        if tid in done or tid in needed:
            continue
        shutil.rmtree(os.path.join(trial_dir_of(tid), CHECKPOINT_DIR), ignore_errors=True)
        done.add(tid)
    return done
