"""Real studies of each kind, run once per test session through the command line on the
local backend, for the loader and report tests; and the browser they are opened in."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
TRIAL = f"{sys.executable} {DATA / 'curve_trial.py'}"

STUDIES: Dict[str, str] = {
    # no metric: the trials report, nothing is optimised
    "grid": """
        hptuning:
          concurrency: 4
          matrix:
            x: {linspace: "0:1:6"}
            y: {values: [0, 2]}
        run:
          cmd: TRIAL --x={{ x }} --y={{ y }} --steps=4
        """,
    # random search with the median stopping rule and a trial that fails
    "random": """
        hptuning:
          concurrency: 3
          seed: 5
          random_search: {n_experiments: 12}
          metric: {name: loss, optimization: minimize}
          early_stopping:
            - kind: metric_early_stopping
              metric: loss
              optimization: minimize
              policy: {kind: median, evaluationInterval: 1, minInterval: 2, minSamples: 2}
          matrix:
            x: {uniform: [0, 1]}
            y: {values: [0, 1, 2]}
        run:
          cmd: TRIAL --x={{ x }} --y={{ y }} --steps=12 --sleep=0.3 --fail-above=0.88
        """,
    "hyperband": """
        hptuning:
          concurrency: 6
          seed: 3
          hyperband:
            max_iter: 9
            eta: 3
            resource: {name: resource, type: int}
            metric: {name: loss, optimization: minimize}
          matrix:
            x: {uniform: [0, 1]}
            lr: {loguniform: [-9.2, -2.3]}
        run:
          cmd: TRIAL --x={{ x }} --y={{ lr }} --resource={{ resource }}
        """,
    "asha": """
        hptuning:
          concurrency: 4
          seed: 3
          asha:
            min_resource: 1
            max_resource: 9
            eta: 3
            n_experiments: 9
            resource: {name: resource, type: int}
            metric: {name: loss, optimization: minimize}
          matrix:
            x: {uniform: [0, 1]}
            lr: {loguniform: [-9.2, -2.3]}
        run:
          cmd: TRIAL --x={{ x }} --y={{ lr }} --resource={{ resource }}
        """,
    "pbt": """
        hptuning:
          seed: 3
          pbt:
            population_size: 4
            perturbation_interval: 2
            max_resource: 6
            resource: {name: resource, type: int}
            metric: {name: loss, optimization: minimize}
          matrix:
            x: {uniform: [0, 1]}
            lr: {loguniform: [-9.2, -2.3]}
        run:
          cmd: TRIAL --x={{ x }} --y={{ lr }} --resource={{ resource }}
        """,
    "bo": """
        hptuning:
          concurrency: 2
          seed: 11
          bo:
            n_initial_trials: 5
            n_iterations: 4
            metric: {name: acc, optimization: maximize}
          matrix:
            x: {uniform: [0, 1]}
            y: {values: [0, 1, 2]}
        run:
          cmd: TRIAL --x={{ x }} --y={{ y }} --steps=3
        """,
}


def cli(*args: str, check: bool = True, timeout: float = 300, env=None) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "hpc_tune", *args], capture_output=True, text=True,
                         timeout=timeout, env={**os.environ, **(env or {})})
    if check and res.returncode != 0:
        raise AssertionError(f"hpc-tune {' '.join(args)} exited {res.returncode}\n{res.stdout}\n{res.stderr}")
    return res


def run_study(root: Path, kind: str, body: str) -> str:
    folder = root / kind
    folder.mkdir()
    study_file = folder / "study.yml"
    study_file.write_text(textwrap.dedent(body).replace("TRIAL", TRIAL))
    state = folder / "state"
    cli("submit", str(study_file), "--state-dir", str(state), "--backend", "local", "--poll-interval", "1")
    (study_dir,) = list(state.iterdir())
    return str(study_dir)


@pytest.fixture(scope="session")
def studies(tmp_path_factory) -> Dict[str, str]:
    """kind -> a finished study folder."""
    root = tmp_path_factory.mktemp("report-studies")
    return {kind: run_study(root, kind, body) for kind, body in STUDIES.items()}


def chromium_or_skip() -> str:
    path = shutil.which("chromium")
    if path:
        return path
    message = "no chromium: scripts/install-chromium.sh installs Debian's (scripts/test.sh runs it as root)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
