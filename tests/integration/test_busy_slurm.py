"""A busy Slurm on the real cluster, through a wrapper first on the controller's PATH that
fails a few times, then runs the real command. `scancel` answers "Socket timed out" where the
controller cancels: it backs off, carries on, and the early stop goes through. `sacct` fails
(slurmdbd unreachable) where the controller polls: no news, the polls back off, the trials end
from their exit records and new ones start. Nothing is lost, nothing is left or run twice."""
from __future__ import annotations

import json
import os
import shutil
import stat
import time

import pytest
from test_studies import cli, journal, results, sacct_states, submit, write_study

BUSY = "scancel: error: Kill job error on job id {}: Socket timed out on send/recv operation"


def busy_wrapper(tmp_path, name, failures, message=BUSY):
    real = shutil.which(name)
    if real is None:
        pytest.skip(f"{name} not found")
    folder = tmp_path / "busy-bin"
    folder.mkdir(exist_ok=True)
    left = tmp_path / f"{name}-failures-left"
    left.write_text(str(failures))
    calls = tmp_path / f"{name}-calls"
    script = folder / name
    script.write_text(f"""#!/bin/sh
echo "$@" >> {calls}
n=$(cat {left})
if [ "$n" -gt 0 ]; then
  echo $((n - 1)) > {left}
  echo "{message.format('$1')}" >&2
  exit 1
fi
exec {real} "$@"
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return folder, calls


@pytest.mark.slurm
def test_a_busy_scancel_during_an_early_stop_is_backed_off_and_the_stop_goes_through(tmp_path):
    folder, calls = busy_wrapper(tmp_path, "scancel", failures=2)
    study = write_study(tmp_path, """
        hptuning:
          concurrency: 3
          early_stopping:
            - {metric: acc, value: 0.9, optimization: maximize}
          matrix:
            x: {values: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}
            acc: {values: [0.95, 0.1, 0.2]}
        slurm: {time: "5"}
        run:
          cmd: PROBE --x={{ x }} --acc={{ acc }} --sleep=$( [ {{ acc }} = 0.95 ] && echo 2 || echo 120 )
        """)
    t0 = time.time()
    study_dir, res = submit(tmp_path, study, "slurm", "--foreground",
                            env={"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"})
    assert "scheduler busy" in res.stdout and "Socket timed out" in res.stdout, res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    status = json.loads(cli("status", study_dir, "--json").stdout)
    assert status["state"] == "early_stopped" and "acc = 0.95" in status["reason"], status
    rows = {r["trial"]: r for r in status["trials"]}
    assert len(rows) == 3 and rows[0]["metrics"]["acc"] == 0.95
    cancelled = [r for r in rows.values() if r["state"] == "cancelled"]
    assert len(cancelled) == 2
    assert len(calls.read_text().splitlines()) >= 3  # two busy answers, then the real scancel
    ends = [e for e in journal(study_dir) if e["e"] == "end"]
    assert sorted(e["id"] for e in ends) == [0, 1, 2]  # one end each
    deadline = time.time() + 60
    while True:
        states = sacct_states([r["job_id"] for r in cancelled])
        if all(s.startswith("CANCELLED") for s in states.values()) or time.time() > deadline:
            break
        time.sleep(2)
    assert all(s.startswith("CANCELLED") for s in states.values()), states
    assert time.time() - t0 < 110  # stopped long before the others' 120 s


SACCT_DOWN = "sacct: error: Problem talking to the database: Connection refused"


@pytest.mark.slurm
def test_a_failing_sacct_is_no_news_the_polls_back_off_and_every_trial_ends_once(tmp_path):
    folder, calls = busy_wrapper(tmp_path, "sacct", failures=3, message=SACCT_DOWN)
    study = write_study(tmp_path, """
        hptuning:
          concurrency: 2
          matrix:
            x: {values: [0.1, 0.2, 0.3, 0.4]}
        slurm: {time: "5"}
        run:
          cmd: PROBE --x={{ x }} --sleep=20
        """)
    # the polls at ~1, 6 and 16 s fail (backing off 5, 10, 20 s); the real sacct answers from ~36 s on
    study_dir, res = submit(tmp_path, study, "slurm", "--foreground",
                            env={"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"})
    out = res.stdout + res.stderr
    assert "job states unavailable (sacct failed" in out and "Connection refused" in out, out
    assert "Traceback" not in out
    assert len(calls.read_text().splitlines()) > 3, out  # three failures, then the real sacct answered
    status = json.loads(cli("status", study_dir, "--json").stdout)
    assert status["state"] == "finished", status
    assert [r["state"] for r in status["trials"]] == ["completed"] * 4, status
    events = journal(study_dir)
    submitted = [(e["id"], e.get("attempt", 0)) for e in events if e["e"] == "submitted"]
    assert sorted(submitted) == [(i, 0) for i in range(4)], submitted  # no trial submitted twice
    assert sorted(e["id"] for e in events if e["e"] == "end") == list(range(4))
    assert not [e for e in events if "sacct failed" in json.dumps(e) or "UNKNOWN" in json.dumps(e)]  # no news
    for tid in range(4):
        assert len([r for r in results(study_dir, tid) if "started" in r]) == 1  # one run each
    states = sacct_states([e["job"] for e in events if e["e"] == "submitted"])
    assert set(states.values()) == {"COMPLETED"}, states
