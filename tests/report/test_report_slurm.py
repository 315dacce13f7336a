"""A report of a study that ran on the real Slurm cluster, one of whose trial jobs Slurm
requeued (``scontrol requeue``) while it ran: the timeline shows Slurm's job ids, the node,
and the requeue, from what the controller and the trial wrapper recorded."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import TRIAL, chromium_or_skip, cli
from headless_chromium import HeadlessChromium

import hpc_tune


def _lines(study_dir: str, trial: int) -> int:
    try:
        with open(os.path.join(study_dir, "trials", str(trial), "result.jsonl")) as fh:
            return sum(1 for _ in fh)
    except FileNotFoundError:
        return 0


def _job_of(study_dir: str, trial: int):
    with open(os.path.join(study_dir, "journal.jsonl")) as fh:
        jobs = [e["job"] for e in map(json.loads, fh) if e["e"] == "submitted" and e["id"] == trial]
    return jobs[-1] if jobs else None


@pytest.mark.slurm
@pytest.mark.timeout(600)
def test_report_of_a_slurm_study_with_a_requeued_job(tmp_path):
    study_file = tmp_path / "study.yml"
    study_file.write_text(textwrap.dedent(f"""
        hptuning:
          concurrency: 2
          metric: {{name: loss, optimization: minimize}}
          matrix:
            x: {{values: [0.2, 0.6]}}
        slurm: {{time: "4"}}
        run:
          cmd: {TRIAL} --x={{{{ x }}}} --steps=12 --sleep=1
        """))
    state = tmp_path / "state"
    ctl = subprocess.Popen([sys.executable, "-m", "hpc_tune", "submit", str(study_file), "--state-dir", str(state),
                            "--backend", "slurm", "--poll-interval", "3", "--foreground"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    study_dir = None
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            if state.exists() and any(state.iterdir()):
                study_dir = str(next(state.iterdir()))
                if _lines(study_dir, 0) >= 3 and _job_of(study_dir, 0):
                    break
            time.sleep(0.5)
        else:
            pytest.fail("trial 0 did not report 3 steps on the cluster within 300 s")
        job = _job_of(study_dir, 0)
        res = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert ctl.wait(timeout=420) == 0
    finally:
        if ctl.poll() is None:
            if study_dir:
                cli("cancel", study_dir, check=False)
            ctl.kill()
            ctl.wait()
    study = hpc_tune.load_study(study_dir)
    assert study.state == "finished" and study.counts() == {"completed": 2}
    node = subprocess.run(["sinfo", "-h", "-o", "%n"], capture_output=True, text=True).stdout.split()[0]
    requeued = study.trial(0).attempts[-1]
    assert requeued.job_id == job and requeued.requeues >= 1 and requeued.node == node
    assert all(a.job_id and a.job_id[0].isdigit() and a.queued <= a.started <= a.ended
               for t in study.trials for a in t.attempts)
    out = tmp_path / "slurm.html"
    cli("report", study_dir, "-o", str(out))
    text = out.read_text()
    assert "requeued by Slurm" in text and f"{job} · {node}" in text
    chromium_or_skip()
    with HeadlessChromium() as browser:
        page = browser.open(out.as_uri())
        assert page.console_errors == []
        assert page.evaluate("document.querySelector('svg[data-plot=timeline]').getBoundingClientRect().height") > 100
