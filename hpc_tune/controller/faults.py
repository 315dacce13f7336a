"""Fault injection for the tests of "survive everything" (tests/faults).

``HPC_TUNE_FAULT=POINT:N`` kills this process with SIGKILL the N-th time it passes POINT
(``cycle``, ``reported``, ``ended``, ``recorded``, ``submitted``: see the calls in ``loop``).
"""
from __future__ import annotations

import os
import signal
from typing import Dict

_FAULT = os.environ.get("HPC_TUNE_FAULT", "")
_fault_hits: Dict[str, int] = {}


def fault(point: str) -> None:
    if not _FAULT:
        return
    name, _, count = _FAULT.partition(":")
    if name == point:
        _fault_hits[point] = _fault_hits.get(point, 0) + 1
        if _fault_hits[point] == int(count or 1):
            os.kill(os.getpid(), signal.SIGKILL)
