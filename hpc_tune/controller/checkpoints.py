"""The file work behind checkpoints: PBT's copies and the deletion of checkpoints no trial
may start from any more. What to copy and what to delete is the decision core's
(``DecisionCore.checkpoint_copy``, ``DecisionCore.checkpoints_to_delete``); the loop calls
these before submitting and after each cycle.

Two ways a trial starts from another one's checkpoint (``resume_from``):

* **A chain** (Hyperband with ``resume``, ASHA's promotions): one configuration trains on,
  one trial at a time. Every trial of the chain uses the folder of the chain's first trial,
  so a promotion continues where the rung below stopped, without a copy.
* **A copy** (PBT): the same checkpoint may start a member's own next interval and the
  bottom members that exploit it, while its owner's line trains on. Before such a trial is
  submitted its source's folder is copied into the trial's own folder, so nothing a trial
  writes can change what another one copies.
"""
from __future__ import annotations

import os
import shutil


def copy_into(source: str, target: str) -> bool:
    """Copy the folder ``source`` to ``target`` unless ``target`` exists (then it is the
    trial's own, maybe with what it saved since: a resubmission must not overwrite it).
    The copy goes to a temporary folder renamed into place, so a crash leaves no half copy.
    True when a copy was made. Raises FileNotFoundError when ``source`` is gone."""
    if os.path.isdir(target):
        return False
    if not os.path.isdir(source):
        raise FileNotFoundError(f"the checkpoint to start from, {source}, does not exist (deleted by hand?)")
    tmp = f"{target}.copying"
    shutil.rmtree(tmp, ignore_errors=True)  # a copy a crash interrupted
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copytree(source, tmp, symlinks=True)
    os.rename(tmp, target)
    return True


def delete(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)
