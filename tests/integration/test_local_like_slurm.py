"""The local backend behaves like Slurm where a user can tell (real processes, real signals):
running at once, the study's time limit with Slurm's time-out, retry and reason, a vanished
trial retried like a node failure, Ctrl-C that says what keeps running, `logs` of a silent
trial."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest


def cli(*args, check=True):
    res = subprocess.run([sys.executable, "-m", "hpc_tune", *args], capture_output=True, text=True, timeout=300)
    if check and res.returncode != 0:
        raise AssertionError(f"hpc-tune {' '.join(args)} exited {res.returncode}\n{res.stdout}\n{res.stderr}")
    return res


def write_study(tmp_path, cmd, slurm="{}", xs=(1,)):
    path = tmp_path / "study.yml"
    path.write_text(textwrap.dedent(f"""
        version: 1
        kind: group
        hptuning:
          concurrency: 1
          matrix:
            x: {{values: {list(xs)}}}
        slurm: {slurm}
        run:
          cmd: {json.dumps(cmd)}
        """))
    return str(path)


def start(tmp_path, study, *extra):
    """`hpc-tune submit --backend local` in the background; returns (process, study dir)."""
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-m", "hpc_tune", "submit", study, "--backend", "local",
                             "--state-dir", str(state), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    study_dir = wait_for(lambda: next((str(state / d) for d in os.listdir(state)), None) if state.exists() else None)
    return proc, study_dir


def wait_for(condition, limit=120.0):
    """Poll ``condition`` until it returns something true (a bound on a wait, not a timing check)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met within the bound")


def journal(study_dir):
    with open(os.path.join(study_dir, "journal.jsonl")) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def trial_state(study_dir, trial=0):
    status = json.loads(cli("status", study_dir, "--json").stdout)
    return next((t for t in status["trials"] if t["trial"] == trial), {}).get("state")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_running_at_once_not_at_the_next_poll_and_ctrl_c_says_what_keeps_running(tmp_path):
    # Trial 0 ends at once; trial 1 starts after it, long after the first scheduler poll,
    # and 10 minutes before the next.
    study = write_study(tmp_path, "[ {{ x }} = 1 ] || sleep 300", xs=(1, 2))
    proc, study_dir = start(tmp_path, study, "--poll-interval", "600")
    try:
        wait_for(lambda: trial_state(study_dir, 1) == "running")
        started = [e for e in journal(study_dir) if e["e"] == "state" and e["id"] == 1]
        assert [e["raw"] for e in started] == ["started"]  # from the wrapper's record, not a poll
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground controller
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    last = out.strip().splitlines()[-1]
    study_id = os.path.basename(study_dir)
    assert last == (f"controller stopped (SIGINT): 1 trial keep running as local processes; "
                    f"`hpc-tune resume {study_id}` carries on, `hpc-tune cancel {study_id}` stops them")
    assert "Traceback" not in err
    job = json.loads(cli("status", study_dir, "--json").stdout)["trials"][1]["job_id"]
    pid = int(job.split("-")[1])
    assert alive(pid)  # it did keep running
    cli("cancel", study_dir)
    wait_for(lambda: not alive(pid), limit=30)
    assert trial_state(study_dir, 1) == "cancelled"


def test_the_time_limit_times_out_warns_first_and_retries_like_slurm(tmp_path):
    signals = tmp_path / "signals"
    # Records the warning and the end; never finishes on its own.
    cmd = (f"trap 'echo USR2 $HPC_TUNE_ATTEMPT >> {signals}' USR2; "
           f"trap 'echo TERM $HPC_TUNE_ATTEMPT >> {signals}; exit 143' TERM; "
           "while true; do sleep 0.2; done")
    study = write_study(tmp_path, cmd, slurm='{time: "0:03", max_retries: 1}')  # 3 s, Slurm's MM:SS
    proc, study_dir = start(tmp_path, study)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err  # the study finished (its only trial failed)
    events = journal(study_dir)
    retries = [e for e in events if e["e"] == "retry"]
    assert [(e["attempt"], e["reason"], e["counted"]) for e in retries] == [(1, "time limit reached (TIMEOUT)", True)]
    (end,) = [e for e in events if e["e"] == "end"]
    assert end["state"] == "failed"
    assert end["reason"] == "time limit reached (TIMEOUT); no retries left (1 used)"
    assert signals.read_text().split("\n")[:-1] == ["USR2 0", "TERM 0", "USR2 1", "TERM 1"]


def test_a_trial_killed_with_its_controller_is_retried_like_a_node_failure(tmp_path):
    marker = tmp_path / "second-attempt"
    # The first attempt hangs (until it is killed); the second one finishes.
    cmd = (f"if [ \"$HPC_TUNE_ATTEMPT\" = 0 ]; then sleep 300; else touch {marker}; fi")
    study = write_study(tmp_path, cmd)
    proc, study_dir = start(tmp_path, study)
    try:
        wait_for(lambda: trial_state(study_dir) == "running")
        started = json.load(open(os.path.join(study_dir, "trials", "0", "started.json")))
        # What dies with a controller's session: the controller and the trial's wrapper. The
        # command itself (its own session) is left behind, an orphan.
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        os.kill(started["pid"], signal.SIGKILL)
        wait_for(lambda: not alive(started["pid"]), limit=30)
        assert alive(started["child_pid"])
    finally:
        if proc.poll() is None:
            proc.kill()
    res = cli("resume", study_dir, "--backend", "local", check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    events = journal(study_dir)
    (retry,) = [e for e in events if e["e"] == "retry"]
    assert retry["counted"]
    assert retry["reason"].startswith("the job vanished (its process vanished without an exit record")
    (end,) = [e for e in events if e["e"] == "end"]
    assert end["state"] == "completed" and marker.exists()
    wait_for(lambda: not alive(started["child_pid"]), limit=30)  # the orphan was killed before the retry


def test_logs_of_a_trial_that_wrote_nothing_say_so(tmp_path):
    study = write_study(tmp_path, "true")
    proc, study_dir = start(tmp_path, study)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    res = cli("logs", study_dir, "0")
    assert res.stdout.startswith("trial 0 ended (completed) without writing any output (")
    assert "stdout.log" in res.stdout and "empty" in res.stdout


@pytest.mark.parametrize("signal_name", ["SIGTERM"])
def test_a_trial_that_ignores_sigterm_is_killed_after_the_grace_time(tmp_path, signal_name):
    cmd = "trap '' TERM USR2; while true; do sleep 0.2; done"
    study = write_study(tmp_path, cmd, slurm='{time: "0:02", max_retries: 0}')
    proc, study_dir = start(tmp_path, study)
    out, err = proc.communicate(timeout=120)
    (end,) = [e for e in journal(study_dir) if e["e"] == "end"]
    assert end["reason"] == "time limit reached (TIMEOUT); no retries left (0 used)", out + err
    exit_record = json.load(open(os.path.join(study_dir, "trials", "0", "exit.json")))
    assert exit_record["timed_out"] and exit_record["signal"] == "SIGKILL"
