"""Every reported number is visible: a grid without a metric (Polyaxon's first example) run
for real on the local backend, then read back through `status`, `export` and `best`."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import textwrap

TRIAL = """
import sys
import hpc_tune
lr, layers = float(sys.argv[1]), int(sys.argv[2])
for step in range(3):
    hpc_tune.report(step=step, loss=1.0 / (step + 1) + lr, acc=0.1 * layers * step)
hpc_tune.report(step=3, val=lr * 10)  # a key on one line only
"""


def cli(*args, check=True, env=None):
    res = subprocess.run([sys.executable, "-m", "hpc_tune", *args], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **(env or {})})
    if check and res.returncode != 0:
        raise AssertionError(f"hpc-tune {' '.join(args)} exited {res.returncode}\n{res.stdout}\n{res.stderr}")
    return res


def run_grid(tmp_path):
    (tmp_path / "trial.py").write_text(TRIAL)
    study = tmp_path / "grid.yml"
    study.write_text(textwrap.dedent(f"""
        version: 1
        kind: group
        hptuning:
          concurrency: 3
          matrix:
            lr: {{values: [0.001, 0.01]}}
            layers: {{values: [1, 2]}}
        run:
          cmd: {sys.executable} {tmp_path / 'trial.py'} {{{{ lr }}}} {{{{ layers }}}}
        """))
    state = str(tmp_path / "state")
    cli("submit", str(study), "--backend", "local", "--state-dir", state, "--poll-interval", "2")
    (study_id,) = os.listdir(state)
    return os.path.join(state, study_id)


def test_a_grid_without_a_metric_shows_every_reported_number(tmp_path):
    study = run_grid(tmp_path)

    text = cli("status", study).stdout
    assert "progress: 4 of 4 trials ended (100 %)" in text
    (listed,) = json.loads(cli("status", "--state-dir", os.path.dirname(study), "--json").stdout)
    assert (listed["trials"], listed["planned"], listed["completed"]) == (4, 4, 4)
    header = next(line for line in text.splitlines() if line.startswith("trial"))
    assert header.split()[:6] == ["trial", "state", "lr", "layers", "loss", "acc"] and "val" in header

    status = json.loads(cli("status", study, "--json").stdout)
    assert status["metric_names"] == ["loss", "acc", "val"]
    t3 = next(t for t in status["trials"] if t["trial"] == 3)
    assert t3["params"] == {"lr": 0.01, "layers": 2}
    assert t3["metrics"] == {"loss": 1 / 3 + 0.01, "acc": 0.4, "val": 0.1}

    rows = json.loads(cli("export", study, "--format", "json").stdout)
    assert [r["metrics"] for r in rows] == [t["metrics"] for t in status["trials"]]
    flat = list(csv.DictReader(io.StringIO(cli("export", study).stdout)))
    assert {"param.lr", "param.layers", "metric.loss", "metric.acc", "metric.val"} <= set(flat[0])
    assert float(flat[3]["metric.acc"]) == 0.4 and flat[3]["param.layers"] == "2"

    curves = list(csv.DictReader(io.StringIO(cli("export", study, "--curves").stdout)))
    assert len(curves) == 4 * (3 * 2 + 1)  # every number of every line, nothing else
    assert {"trial": "3", "step": "2", "key": "acc", "value": "0.4"} in curves
    assert {"trial": "0", "step": "3", "key": "val", "value": "0.01"} in curves
    long_json = json.loads(cli("export", study, "--curves", "--format", "json").stdout)
    assert len(long_json) == len(curves) and long_json[0] == {"trial": 0, "step": 0, "key": "loss", "value": 1.001}

    refused = cli("best", study, check=False)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "under `hptuning:`" in refused.stderr and "--metric" in refused.stderr
    best = json.loads(cli("best", study, "--metric", "acc", "--maximize", "--json").stdout)
    assert (best["trial"], best["value"], best["params"]) == (1, 0.4, {"lr": 0.001, "layers": 2})
    best = json.loads(cli("best", study, "--metric", "loss", "--json").stdout)
    assert best["trial"] == 0 and best["value"] == 1 / 3 + 0.001


def test_watch_draws_a_frame_that_fits_the_terminal(tmp_path):
    study = run_grid(tmp_path)
    out = cli("status", study, "--watch", env={"LINES": "9", "COLUMNS": "200"}).stdout  # ended: one frame
    assert out.startswith("\033[H\033[2J")
    frame = out[len("\033[H\033[2J"):].rstrip("\n").split("\n")
    assert len(frame) <= 9 and frame[1].startswith("progress: 4 of 4 trials")
    assert frame[-1].startswith("(") and frame[-2].startswith("3 ")  # the newest rows, under the header
