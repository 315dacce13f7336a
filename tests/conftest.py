"""Shared test setup. Tests marked ``@pytest.mark.slurm`` need the real one-node Slurm cluster:
without one they are skipped, except under CI=true, where they fail."""
from __future__ import annotations

import functools
import logging
import os
import subprocess
from typing import Tuple

import pytest

NO_SLURM = "no Slurm cluster: start one with `sudo scripts/slurm-cluster.sh up`"


@functools.lru_cache(maxsize=None)
def slurm_cluster_available() -> Tuple[bool, str]:
    """(True, "") if ``sinfo`` and ``sacct`` answer, else (False, why). Asked once per session."""
    for argv in (["sinfo", "-h"], ["sacct", "-n", "-X", "-S", "now"]):
        try:
            res = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError) as exc:
            return False, f"{argv[0]}: {exc}"
        if res.returncode != 0:
            return False, f"{argv[0]}: {res.stderr.strip()[:200]}"
    return True, ""


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("slurm") is None:
        return
    ok, why = slurm_cluster_available()
    if ok:
        return
    message = f"{NO_SLURM} ({why})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def no_leftover_log_handlers():
    """`hpc-tune submit` in the foreground logs to the terminal of its run; run in this
    process (cli.main), that terminal is the test's captured output, gone after the test."""
    logger = logging.getLogger("hpc_tune")
    before = list(logger.handlers)
    yield
    for handler in logger.handlers:
        if handler not in before:
            logger.removeHandler(handler)
