"""hpc_tune.trial: report(), checkpoint_dir(), the job wrapper and its records."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpc_tune import trial
from hpc_tune.trial import (
    EXIT_RECORD,
    STARTED_RECORD,
    checkpoint_dir,
    read_exit_record,
    read_started_record,
    report,
    run_trial,
)

# Where the hpc_tune under test lives (site-packages in CI; the repository with -e), for children.
REPO = str(Path(trial.__file__).resolve().parents[1])


@pytest.fixture
def result_file(tmp_path, monkeypatch):
    path = tmp_path / "result.jsonl"
    monkeypatch.setenv(trial.RESULT_FILE_ENV, str(path))
    return path


def lines(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- report ---------------------------------------------------------------------------------------


def test_report_appends_one_valid_line_per_call(result_file):
    np = pytest.importorskip("numpy")
    before = time.time()
    report(step=3, loss=0.41, acc=1)
    report(loss=np.float32(0.25))
    got = lines(result_file)
    assert got[0]["step"] == 3 and got[0]["loss"] == 0.41 and got[0]["acc"] == 1
    assert isinstance(got[0]["step"], int)
    assert "step" not in got[1] and got[1]["loss"] == pytest.approx(0.25)
    assert all(before <= g["time"] <= time.time() for g in got)
    assert result_file.read_text().endswith("\n")


@pytest.mark.parametrize(
    "metrics, error",
    [
        ({"loss": float("nan")}, ValueError),
        ({"loss": float("inf")}, ValueError),
        ({"loss": "0.5"}, TypeError),
        ({"loss": None}, TypeError),
        ({"loss": True}, TypeError),
        ({"loss": [1.0]}, TypeError),
        ({}, ValueError),
        ({"time": 1.0}, ValueError),
    ],
)
def test_report_rejects_non_numbers_and_writes_nothing(result_file, metrics, error):
    with pytest.raises(error):
        report(step=1, **metrics)
    assert not result_file.exists()


def test_report_rejects_a_bad_step(result_file):
    with pytest.raises(ValueError):
        report(step=float("nan"), loss=1.0)
    with pytest.raises(TypeError):
        report(step="3", loss=1.0)


def test_report_outside_a_trial_goes_to_stderr_with_one_warning(monkeypatch, capsys):
    monkeypatch.delenv(trial.RESULT_FILE_ENV, raising=False)
    monkeypatch.setattr(trial, "_warned_standalone", False)
    report(step=1, loss=0.5)
    report(step=2, loss=0.4)
    err = capsys.readouterr().err
    assert err.count("not set") == 1
    assert '"loss": 0.5' in err and '"loss": 0.4' in err


def test_checkpoint_dir_from_env_and_fallbacks(tmp_path, monkeypatch):
    monkeypatch.setenv(trial.CHECKPOINT_DIR_ENV, str(tmp_path / "ck"))
    assert checkpoint_dir() == tmp_path / "ck" and (tmp_path / "ck").is_dir()
    monkeypatch.delenv(trial.CHECKPOINT_DIR_ENV)
    monkeypatch.setenv(trial.TRIAL_DIR_ENV, str(tmp_path / "t"))
    assert checkpoint_dir() == tmp_path / "t" / "checkpoints"
    monkeypatch.delenv(trial.TRIAL_DIR_ENV)
    monkeypatch.chdir(tmp_path)
    assert checkpoint_dir().resolve() == (tmp_path / "checkpoints").resolve()


# -- run_trial ------------------------------------------------------------------------------------


def test_run_trial_exit_code_env_cwd_and_records(tmp_path):
    trial_dir = tmp_path / "trial"
    work = tmp_path / "work"
    work.mkdir()
    trial_dir.mkdir()
    (trial_dir / EXIT_RECORD).write_text("stale")
    cmd = 'echo "$MY_PARAM $HPC_TUNE_TRIAL_DIR $HPC_TUNE_JOB_ID $PWD" > seen; exit 3'
    code = run_trial(cmd, {"MY_PARAM": "lr=0.1", trial.ATTEMPT_ENV: "2"}, str(trial_dir), str(work), job_id="j-1")
    assert code == 3
    assert (work / "seen").read_text().split() == ["lr=0.1", str(trial_dir), "j-1", str(work)]
    record = read_exit_record(str(trial_dir))
    assert record["exit_code"] == 3 and record["signal"] is None
    assert record["job_id"] == "j-1" and record["attempt"] == 2 and record["restart_count"] == 0
    assert record["started"] <= record["ended"] and record["host"]
    started = json.loads((trial_dir / STARTED_RECORD).read_text())
    assert started["job_id"] == "j-1" and started["pid"] == os.getpid()


def test_run_trial_reports_death_by_signal(tmp_path):
    code = run_trial("kill -KILL $$", {}, str(tmp_path))
    assert code == 128 + signal.SIGKILL
    record = read_exit_record(str(tmp_path))
    assert record["exit_code"] == 137 and record["signal"] == "SIGKILL"


def test_run_trial_defaults_result_file_to_the_trial_dir(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("HPC_TUNE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PYTHONPATH", REPO)
    cmd = f'{sys.executable} -c "import hpc_tune.trial as t; t.report(step=1, loss=2.0)"'
    assert run_trial(cmd, {}, str(tmp_path)) == 0
    assert lines(tmp_path / "result.jsonl")[0]["loss"] == 2.0
    assert (tmp_path / "checkpoints").exists() is False  # only created when asked for


def test_after_signal_can_withhold_the_exit_record(tmp_path):
    """The command signals this very process; the wrapper forwards it back; the hook says the
    end is not final, so there is no exit record (what the Slurm backend does on requeue)."""
    seen = []

    def after_signal(exit_code, received):
        seen.append((exit_code, received))
        return False

    old = signal.getsignal(signal.SIGUSR1)
    cmd = "trap 'exit 5' USR1; kill -USR1 $PPID; sleep 10 & wait"
    code = run_trial(cmd, {}, str(tmp_path), after_signal=after_signal)
    assert code == 5 and seen == [(5, ["SIGUSR1"])]
    assert read_exit_record(str(tmp_path)) is None
    assert signal.getsignal(signal.SIGUSR1) is old  # handlers restored


def _start_wrapper(trial_dir: Path, command: str) -> subprocess.Popen:
    trial_dir.mkdir(parents=True, exist_ok=True)
    (trial_dir / "job.json").write_text(json.dumps({"command": command, "env": {}, "cwd": str(trial_dir)}))
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.Popen([sys.executable, "-m", "hpc_tune.trial", "run", str(trial_dir)], env=env)


def _wait_for(path: Path, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_wrapper_forwards_signals_to_the_command(tmp_path):
    command = (
        "trap 'echo usr1 >> got' USR1; trap 'echo usr2 >> got' USR2; trap 'echo term >> got; exit 7' TERM; "
        "touch ready; while true; do sleep 0.05; done"
    )
    proc = _start_wrapper(tmp_path, command)
    _wait_for(tmp_path / "ready")
    for sig in (signal.SIGUSR1, signal.SIGUSR2):
        proc.send_signal(sig)  # to the wrapper only: it must pass them on
        time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 7
    assert (tmp_path / "got").read_text().split() == ["usr1", "usr2", "term"]
    record = read_exit_record(str(tmp_path))
    assert record["exit_code"] == 7 and record["job_id"] == f"local-{proc.pid}"
    assert record["signals_received"] == ["SIGUSR1", "SIGUSR2", "SIGTERM"]


def test_wrapper_main_rejects_bad_usage(tmp_path):
    assert trial.main(["nonsense"]) == 2
    assert trial.main(["run", str(tmp_path)]) == 2  # no job.json


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b'{"exit_code": ', b"\x00\xff\xfe garbage", b"[1, 2]", b'{"exit_code": "3"}', b'{"exit_code": true}',
     b'"just a string"', b'{"signal": null}'],
)
def test_read_exit_record_tolerates_garbage(tmp_path, content):
    (tmp_path / EXIT_RECORD).write_bytes(content)
    assert read_exit_record(str(tmp_path)) is None


def test_read_exit_record_missing_and_valid(tmp_path):
    assert read_exit_record(str(tmp_path)) is None
    assert read_exit_record(str(tmp_path / "no" / "such" / "dir")) is None
    (tmp_path / EXIT_RECORD).mkdir()  # even a directory in its place
    assert read_exit_record(str(tmp_path)) is None
    (tmp_path / EXIT_RECORD).rmdir()
    (tmp_path / EXIT_RECORD).write_text('{"exit_code": 0, "signal": null}')
    assert read_exit_record(str(tmp_path)) == {"exit_code": 0, "signal": None}


RUN_A_COPY = """
import sys
from hpc_tune.trial import run_trial
sys.exit(run_trial(sys.argv[1], {}, sys.argv[2], job_id="7"))
"""


def _copy(tmp_path: Path, command: str, restart_count: int) -> subprocess.Popen:
    env = {**os.environ, "SLURM_RESTART_COUNT": str(restart_count),
           "PYTHONPATH": str(Path(trial.__file__).resolve().parents[1])}
    return subprocess.Popen([sys.executable, "-c", RUN_A_COPY, command, str(tmp_path / "t")], env=env)


def test_a_run_whose_trial_another_run_claimed_is_fenced_and_writes_nothing_more(tmp_path):
    # Job 7 restarted by Slurm (its node lost only slurmd) while its first run still runs.
    marker = tmp_path / "t" / "lines"
    command = 'while true; do echo "$HPC_TUNE_JOB_ID $$" >> "$HPC_TUNE_TRIAL_DIR/lines"; sleep 0.1; done'
    first = _copy(tmp_path, command, 0)
    deadline = time.time() + 20
    while not (marker.exists() and read_started_record(str(tmp_path / "t")) or {}).get("child_pid"):
        assert time.time() < deadline, "the first run did not start"
        time.sleep(0.05)
    first_child = read_started_record(str(tmp_path / "t"))["child_pid"]
    second = _copy(tmp_path, 'echo "second $$" >> "$HPC_TUNE_TRIAL_DIR/lines"', 1)
    assert second.wait(timeout=30) == 0
    assert first.wait(timeout=10) == 0  # fenced: it stopped by itself
    with pytest.raises(ProcessLookupError):
        os.kill(first_child, 0)  # and its command with it
    lines = marker.read_text().splitlines()
    # The second run's command started only once the first's had stopped: its line is the last.
    assert lines[-1].startswith("second ") and all(not x.startswith("second ") for x in lines[:-1]), lines
    started, ended = read_started_record(str(tmp_path / "t")), read_exit_record(str(tmp_path / "t"))
    assert started["run"] == ended["run"] == "7.1" and ended["exit_code"] == 0
    assert started["node"] and ended["restart_count"] == 1


def test_a_first_run_does_not_wait(tmp_path):
    t0 = time.time()
    assert run_trial("true", {}, str(tmp_path / "t"), job_id="8") == 0
    assert time.time() - t0 < trial.FENCE_WAIT_S
    assert read_exit_record(str(tmp_path / "t"))["run"] == "8.0"
