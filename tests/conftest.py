"""Shared test setup. Tests marked ``@pytest.mark.slurm`` need the real one-node Slurm cluster,
tests marked ``@pytest.mark.slurm_multinode`` the three-node one beside it: without it they are
skipped, except under CI=true, where they fail."""
from __future__ import annotations

import functools
import logging
import os
import subprocess
import time
from typing import Tuple

import pytest

NO_SLURM = "no Slurm cluster: start one with `sudo scripts/slurm-cluster.sh up`"
NO_MULTINODE = "no three-node Slurm cluster: start it with `sudo scripts/slurm-cluster.sh multi up`"
CLUSTER_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts",
                              "slurm-cluster.sh")


@functools.lru_cache(maxsize=None)
def slurm_cluster_available(multinode: bool = False) -> Tuple[bool, str]:
    """(True, "") if ``sinfo`` and ``sacct`` answer (of the three-node cluster if
    ``multinode``), else (False, why). Asked once per session."""
    env = dict(os.environ)
    if multinode:
        conf = subprocess.run(["bash", CLUSTER_SCRIPT, "multi", "conf"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
        if not os.path.isfile(conf):
            return False, f"no {conf}"
        env["SLURM_CONF"] = conf
    for argv in (["sinfo", "-h"], ["sacct", "-n", "-X", "-S", "now"]):
        # sacct may be down for a minute while a node-fault test has stopped slurmdbd
        deadline = time.time() + (150 if argv[0] == "sacct" else 0)
        while True:
            try:
                res = subprocess.run(argv, capture_output=True, text=True, timeout=20, env=env)
            except (OSError, subprocess.SubprocessError) as exc:
                return False, f"{argv[0]}: {exc}"
            if res.returncode == 0:
                break
            if time.time() > deadline:
                return False, f"{argv[0]}: {res.stderr.strip()[:200]}"
            time.sleep(5)
    return True, ""


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("slurm_multinode") is not None:
        ok, why = slurm_cluster_available(multinode=True)
        message = f"{NO_MULTINODE} ({why})"
    elif item.get_closest_marker("slurm") is not None:
        ok, why = slurm_cluster_available()
        message = f"{NO_SLURM} ({why})"
    else:
        return
    if ok:
        return
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
