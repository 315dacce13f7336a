"""Slurm's words -> JobState, sacct/squeue parsing, and poll's decisions on canned output. Pure and fast."""
from __future__ import annotations

import os
import subprocess
from typing import Dict, List

import pytest

from hpc_tune.backends import BackendBusy, BackendError, JobState
from hpc_tune.backends.base import warning_delay_s
from hpc_tune.backends.slurm import (
    SACCT_LAG_S,
    SLURMCTLD_CYCLE_S,
    SlurmBackend,
    classify_error,
    expand_job_ids,
    inherited_slurm_variables,
    parse_exit_code,
    parse_sacct,
    parse_slurm_state,
    parse_squeue,
    sbatch_options,
    slurm_time_minutes,
)
from hpc_tune.backends.slurm_commands import SlurmCommands, submission_environment

EVERY_SLURM_STATE = {
    "BOOT_FAIL": JobState.BOOT_FAIL,
    "CANCELLED": JobState.CANCELLED,
    "CANCELLED by 0": JobState.CANCELLED,
    "CANCELLED by 1000": JobState.CANCELLED,
    "COMPLETED": JobState.COMPLETED,
    "COMPLETING": JobState.RUNNING,
    "CONFIGURING": JobState.PENDING,
    "DEADLINE": JobState.DEADLINE,
    "FAILED": JobState.FAILED,
    "LAUNCH_FAILED": JobState.FAILED,
    "NODE_FAIL": JobState.NODE_FAIL,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY,
    "PENDING": JobState.PENDING,
    "POWER_UP_NODE": JobState.PENDING,
    "PREEMPTED": JobState.PREEMPTED,
    "REQUEUED": JobState.REQUEUED,
    "REQUEUE_FED": JobState.REQUEUED,
    "REQUEUE_HOLD": JobState.REQUEUED,
    "RESIZING": JobState.RUNNING,
    "RESV_DEL_HOLD": JobState.PENDING,
    "REVOKED": JobState.CANCELLED,
    "RUNNING": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "SPECIAL_EXIT": JobState.FAILED,
    "STAGE_OUT": JobState.RUNNING,
    "STOPPED": JobState.SUSPENDED,
    "SUSPENDED": JobState.SUSPENDED,
    "TIMEOUT": JobState.TIMEOUT,
    "UPDATE_DB": JobState.RUNNING,
    # squeue's short codes
    "PD": JobState.PENDING, "R": JobState.RUNNING, "CG": JobState.RUNNING, "CD": JobState.COMPLETED,
    "F": JobState.FAILED, "CA": JobState.CANCELLED, "TO": JobState.TIMEOUT, "NF": JobState.NODE_FAIL,
    "OOM": JobState.OUT_OF_MEMORY, "PR": JobState.PREEMPTED, "S": JobState.SUSPENDED, "BF": JobState.BOOT_FAIL,
    "DL": JobState.DEADLINE, "RQ": JobState.REQUEUED, "SE": JobState.FAILED,
    # decorations seen in the wild
    "FAILED+": JobState.FAILED, " running ": JobState.RUNNING, "Cancelled by 0": JobState.CANCELLED,
}


@pytest.mark.parametrize("raw, expected", sorted(EVERY_SLURM_STATE.items()))
def test_every_slurm_state_maps(raw, expected):
    assert parse_slurm_state(raw) is expected


@pytest.mark.parametrize("raw", ["", "   ", "UNKNOWN", "FROBNICATED", "by 0", "|", "\x00", None, 42])
def test_unknown_words_are_unknown_never_an_exception(raw):
    assert parse_slurm_state(raw) is JobState.UNKNOWN


def test_live_and_final_split_every_state():
    live = {s for s in JobState if s.live}
    final = {s for s in JobState if s.final}
    assert live == {JobState.PENDING, JobState.RUNNING, JobState.REQUEUED, JobState.SUSPENDED}
    assert not live & final
    assert set(JobState) - live - final == {JobState.UNKNOWN}
    assert JobState.LOST.final and JobState.PREEMPTED.final  # a requeued preemption is reported REQUEUED


@pytest.mark.parametrize("raw, code", [("0:0", 0), ("3:0", 3), ("0:15", 143), ("1:9", 137), ("", None), ("x:y", None)])
def test_exit_codes(raw, code):
    assert parse_exit_code(raw) == code


def test_array_ranges_expand():
    assert expand_job_ids("12") == ["12"]
    assert expand_job_ids("12_3") == ["12_3"]
    assert expand_job_ids("12_[0-2]") == ["12_0", "12_1", "12_2"]
    assert expand_job_ids("12_[1-3,7%2]") == ["12_1", "12_2", "12_3", "12_7"]
    assert expand_job_ids("12_[5]") == ["12_5"]


SACCT = """\
40|COMPLETED|0:0|None
41_0|RUNNING|0:0|None
41_[1-3%2]|PENDING|0:0|JobArrayTaskLimit
42|PREEMPTED|0:0|None
42|PENDING|0:0|BeginTime
43|REQUEUED|0:0|None
43|RUNNING|0:0|None
44|CANCELLED by 0|0:15|None
44.batch|CANCELLED|0:15|
44.extern|COMPLETED|0:0|
45|FAILED|3:0|NonZeroExitCode
sacct: error: something unrelated
garbage line without pipes

abc|RUNNING|0:0|None
46|OUT_OF_MEMORY|0:125|None
"""


def test_parse_sacct_arrays_requeues_steps_and_junk():
    rows = parse_sacct(SACCT)
    assert set(rows) == {"40", "41_0", "41_1", "41_2", "41_3", "42", "43", "44", "45", "46"}
    assert rows["41_2"].state == "PENDING" and rows["41_2"].reason == "JobArrayTaskLimit"
    assert rows["42"].state == "PENDING"  # the last row of a requeued job wins (-D lists them oldest first)
    assert rows["43"].state == "RUNNING"
    assert rows["44"].state == "CANCELLED by 0" and rows["44"].exit_code == "0:15"  # not the step's row
    assert rows["45"].exit_code == "3:0"


def test_parse_squeue():
    rows = parse_squeue("7_1|PENDING|Priority\n8|RUNNING|None\njunk\n9|COMPLETING\n")
    assert rows["7_1"].state == "PENDING" and rows["7_1"].reason == "Priority"
    assert rows["8"].reason == "" and rows["9"].state == "COMPLETING"


@pytest.mark.parametrize(
    "text, minutes",
    [("30", 30), ("1:30", 1.5), ("2:00:00", 120), ("1-0", 1440), ("1-2", 1560), ("1-2:30", 1590),
     ("1-00:00:30", 1440.5), ("UNLIMITED", None), ("infinite", None), ("0", None)],
)
def test_slurm_time(text, minutes):
    assert slurm_time_minutes(text) == minutes


@pytest.mark.parametrize("text", ["", "abc", "1:2:3:4", "1-x"])
def test_slurm_time_rejects_junk(text):
    with pytest.raises(ValueError):
        slurm_time_minutes(text)


@pytest.mark.parametrize("minutes", [1, 1.5, 2, 3, 5, 10, 60])
def test_the_slurm_warning_never_comes_before_half_the_limit(minutes):
    # slurmctld sends --signal=USR2@W once W + its 30 s cycle covers the time left, so the
    # earliest warning is at limit - W - 30 s; a 60 s limit with W = 30 s got it at the start.
    limit_s = minutes * 60
    warn = warning_delay_s(minutes, 90, early_s=SLURMCTLD_CYCLE_S)
    assert 1 <= warn <= 90
    assert limit_s - warn - SLURMCTLD_CYCLE_S >= limit_s / 2 - 1
    assert warning_delay_s(None, 90, early_s=SLURMCTLD_CYCLE_S) == 90


def test_the_local_warning_comes_when_asked_or_at_half_the_limit():
    assert warning_delay_s(1, 90) == 30 and warning_delay_s(10, 90) == 90


def test_sbatch_options():
    assert sbatch_options(["--constraint=a100", "--exclusive", "#SBATCH --mail-type END", "--comment=a=b"]) == {
        "constraint": "a100", "exclusive": True, "mail-type": "END", "comment": "a=b"}
    with pytest.raises(ValueError):
        sbatch_options(["-C a100"])


@pytest.mark.parametrize(
    "message, busy",
    [("sbatch: error: Batch job submission failed: Socket timed out on send/recv operation", True),
     ("sbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, "
      "user's size and/or time limits)", True),
     ("sbatch: error: Batch job submission failed: Resource temporarily unavailable", True),
     ("sbatch: error: Unable to contact slurm controller (connect failure)", True),
     ("sbatch: error: Batch job submission failed: Invalid partition name specified", False),
     ("sbatch: error: Batch job submission failed: Requested node configuration is not available", False),
     ("", False)],
)
def test_classify_sbatch_errors(message, busy):
    err = classify_error(message)
    assert isinstance(err, BackendError) and isinstance(err, BackendBusy) == busy
    assert message.strip() in str(err)


# -- poll's decisions on canned scheduler output ------------------------------------------------------


class FakeScheduler:
    def __init__(self, answers: Dict[str, subprocess.CompletedProcess]) -> None:
        self.answers = answers
        self.argv: List[List[str]] = []

    def __call__(self, backend: SlurmBackend, argv: List[str]) -> subprocess.CompletedProcess:
        backend.calls[argv[0]] += 1
        self.argv.append(argv)
        return self.answers[argv[0]]


def ok(stdout: str) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess([], 0, stdout, "")


def failed(stderr: str) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess([], 1, "", stderr)


def backend_with(monkeypatch, tmp_path, **answers) -> "tuple[SlurmBackend, FakeScheduler]":
    fake = FakeScheduler(answers)
    monkeypatch.setattr(SlurmBackend, "_run", lambda self, argv: fake(self, argv))
    return SlurmBackend(str(tmp_path), lost_grace_s=30), fake


def test_poll_is_one_sacct_call_for_all_ids(monkeypatch, tmp_path):
    backend, fake = backend_with(monkeypatch, tmp_path, sacct=ok(SACCT))
    got = backend.poll(["40", "41_0", "41_3", "43", "44", "45", "46"])
    assert backend.calls == {"sacct": 1}
    assert fake.argv[0][-1] == "40,41,43,44,45,46"  # array tasks asked for by the array's id
    assert got["40"].state is JobState.COMPLETED and got["40"].exit_code == 0
    assert got["41_3"].state is JobState.PENDING and got["41_3"].reason == "JobArrayTaskLimit"
    assert got["41_3"].exit_code is None
    assert got["43"].state is JobState.RUNNING
    assert got["44"].state is JobState.CANCELLED and got["44"].raw == "CANCELLED by 0"
    assert got["45"].state is JobState.FAILED and got["45"].exit_code == 3 and got["45"].reason == "NonZeroExitCode"
    assert got["46"].state is JobState.OUT_OF_MEMORY


def test_fresh_job_unknown_to_sacct_is_pending_then_lost(monkeypatch, tmp_path):
    backend, _ = backend_with(monkeypatch, tmp_path, sacct=ok(""), squeue=ok(""))
    clock = [1000.0]
    monkeypatch.setattr("hpc_tune.backends.slurm.time.time", lambda: clock[0])
    assert backend.poll(["77"])["77"].state is JobState.PENDING
    assert backend.calls == {"sacct": 1, "squeue": 1}
    clock[0] += 31
    assert backend.poll(["77"])["77"].state is JobState.LOST


def test_job_only_squeue_knows_takes_squeues_state(monkeypatch, tmp_path):
    backend, _ = backend_with(monkeypatch, tmp_path, sacct=ok("40|COMPLETED|0:0|None\n"),
                              squeue=ok("78_2|PENDING|Priority\n79|RUNNING|None\n"))
    got = backend.poll(["40", "78_2", "79"])
    assert got["78_2"].state is JobState.PENDING and got["78_2"].reason == "Priority"
    assert got["79"].state is JobState.RUNNING
    assert backend.calls == {"sacct": 1, "squeue": 1}


def test_preempted_and_requeued_is_live_preempted_for_good_is_final(monkeypatch, tmp_path):
    backend, _ = backend_with(monkeypatch, tmp_path, sacct=ok("50|PREEMPTED|0:0|None\n51|PREEMPTED|0:0|None\n"
                                                              "52|NODE_FAIL|0:0|None\n"),
                              squeue=ok("50|PENDING|BeginTime\n"))
    got = backend.poll(["50", "51", "52"])
    assert got["50"].state is JobState.PENDING and got["50"].state.live and "PREEMPTED" in got["50"].reason
    assert got["51"].state is JobState.PREEMPTED and got["51"].state.final
    assert got["52"].state is JobState.NODE_FAIL
    assert backend.calls == {"sacct": 1, "squeue": 1}


@pytest.mark.parametrize("answer", [
    failed("sacct: error: Problem talking to the database: Connection refused"),
    subprocess.CompletedProcess([], 124, "", "sacct: timed out after 60.0 s"),  # SlurmCommands' time-out
    subprocess.CompletedProcess([], 1, "", ""),
])
def test_a_failed_sacct_is_no_news_busy_and_no_state(monkeypatch, tmp_path, answer):
    """sacct asks slurmdbd, which restarts and lags: a failed query says nothing about any job
    (not UNKNOWN, not squeue's partial view): the controller backs off and asks again."""
    backend, _ = backend_with(monkeypatch, tmp_path, sacct=answer, squeue=ok("60|RUNNING|None\n"))
    with pytest.raises(BackendBusy, match="sacct failed") as raised:
        backend.poll(["60", "61"])
    assert (answer.stderr or "exit code 1") in str(raised.value)
    assert backend.calls == {"sacct": 1}  # no second query for a poll that has no news


def test_squeue_down_leaves_a_job_sacct_does_not_list_unknown_not_lost(monkeypatch, tmp_path):
    backend, _ = backend_with(monkeypatch, tmp_path, sacct=ok("70|PREEMPTED|0:0|None\n"), squeue=failed("down"))
    clock = [1000.0]
    monkeypatch.setattr("hpc_tune.backends.slurm.time.time", lambda: clock[0])
    backend._since["71_1"] = clock[0] - 3600  # long past the grace: LOST, had squeue answered
    got = backend.poll(["70", "71_1"])
    assert {s.state for s in got.values()} == {JobState.UNKNOWN}
    assert got["70"].raw == "PREEMPTED"  # requeued or not: squeue would have said


def test_ids_that_are_not_slurm_ids_are_lost_without_a_call(monkeypatch, tmp_path):
    backend, _ = backend_with(monkeypatch, tmp_path)
    got = backend.poll(["local-12", "x"])
    assert {s.state for s in got.values()} == {JobState.LOST}
    assert backend.calls == {}


def test_find_jobs_names_array_tasks_from_the_manifest(monkeypatch, tmp_path):
    backend, _ = backend_with(monkeypatch, tmp_path, squeue=ok(
        "90_0|hpct-s1-t@tok\n90_1|hpct-s1-t@tok\n91|hpct-s1-t7\n92|other\n93_0|hpct-s1-t@missing\n"))
    (tmp_path / "arrays").mkdir()
    (tmp_path / "arrays" / "tok.json").write_text('{"names": ["hpct-s1-t5", "hpct-s1-t6"]}')
    assert backend.find_jobs("hpct-s1-") == {"90_0": "hpct-s1-t5", "90_1": "hpct-s1-t6", "91": "hpct-s1-t7",
                                             "93_0": "hpct-s1-t@missing"}
    assert backend.find_jobs("hpct-s1-t6") == {"90_1": "hpct-s1-t6"}
    assert backend.calls == {"squeue": 2}


def test_job_just_submitted_missing_from_sacct_is_pending_without_squeue(monkeypatch, tmp_path):
    """slurmdbd lags sbatch by a few seconds: no second query for a job this young."""
    backend, _ = backend_with(monkeypatch, tmp_path, sacct=ok(""), squeue=ok(""))
    clock = [1000.0]
    monkeypatch.setattr("hpc_tune.backends.slurm.time.time", lambda: clock[0])
    backend._submitted_at["80"] = backend._since["80"] = clock[0] - 2
    got = backend.poll(["80"])["80"]
    assert got.state is JobState.PENDING and got.reason == "submitted; not in sacct yet"
    assert backend.calls == {"sacct": 1}
    clock[0] += SACCT_LAG_S  # older: squeue is asked, and says nothing (pending until the grace ends)
    assert backend.poll(["80"])["80"].state is JobState.PENDING
    assert backend.calls == {"sacct": 2, "squeue": 1}


CONTROLLER_JOB_ENV = {
    "SLURM_JOB_ID": "41", "SLURM_JOBID": "41", "SLURM_RESTART_COUNT": "1", "SLURM_MEM_PER_NODE": "1024",
    "SLURM_CPUS_PER_TASK": "1", "SLURM_JOB_NAME": "hpct-ctl-x", "SLURMD_NODENAME": "n2",
    "SLURM_WORKING_CLUSTER": "hpctune3:127.0.0.1:6827:9728:109", "SLURM_CONF": "/etc/slurm/other.conf",
    "SBATCH_ACCOUNT": "mine", "HOME": "/home/me", "PATH": "/usr/bin", "MY_SLURM_THING": "kept",
}


def test_a_submitting_jobs_own_slurm_variables_are_not_inherited():
    # SLURM_CONF chooses the cluster (a client setting); SBATCH_* are the user's defaults.
    assert inherited_slurm_variables(CONTROLLER_JOB_ENV) == [
        "SLURMD_NODENAME", "SLURM_CPUS_PER_TASK", "SLURM_JOBID", "SLURM_JOB_ID", "SLURM_JOB_NAME",
        "SLURM_MEM_PER_NODE", "SLURM_RESTART_COUNT", "SLURM_WORKING_CLUSTER"]
    assert inherited_slurm_variables({"HOME": "/h", "SLURM_CONF": "/x"}) == []
    # sbatch's own input variables, which a user sets to choose the cluster or Slurm's output
    assert inherited_slurm_variables({"SLURM_CLUSTERS": "other", "SLURM_DEBUG_FLAGS": "Steps",
                                      "SLURM_EXIT_ERROR": "3"}) == []


def test_sbatch_runs_without_the_submitting_jobs_variables(monkeypatch, tmp_path):
    for k in [k for k in os.environ if k.startswith(("SLURM_", "SLURMD_"))]:
        monkeypatch.delenv(k)
    executor = SlurmBackend(str(tmp_path))._executor("hpct-s-0", 0, 1)
    assert executor._make_submission_command(tmp_path / "x.sh") == ["sbatch", str(tmp_path / "x.sh")]
    for k, v in CONTROLLER_JOB_ENV.items():
        monkeypatch.setenv(k, v)
    command = executor._make_submission_command(tmp_path / "x.sh")
    assert command[0] == "env" and command[-2:] == ["sbatch", str(tmp_path / "x.sh")]
    unset = command[1:-2]
    assert unset[0::2] == ["-u"] * (len(unset) // 2)
    assert unset[1::2] == inherited_slurm_variables(CONTROLLER_JOB_ENV)
    # What sbatch then sees: none of the job's variables, everything else.
    res = subprocess.run([*command[:-2], "env"], capture_output=True, text=True, check=True)
    seen = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
    assert not [k for k in seen if k.startswith(("SLURM_", "SLURMD_")) and k != "SLURM_CONF"]
    assert seen["SLURM_CONF"] == "/etc/slurm/other.conf" and seen["SBATCH_ACCOUNT"] == "mine"
    assert seen["MY_SLURM_THING"] == "kept"


def test_the_controller_jobs_sbatch_runs_without_the_callers_variables(monkeypatch, tmp_path):
    """`hpc-tune submit` inside an allocation: the controller job's sbatch, like the trials',
    runs without the caller's own job's variables (an sbatch first on PATH records what it saw)."""
    seen_file = tmp_path / "seen"
    fake = tmp_path / "bin" / "sbatch"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\nenv > {seen_file}\necho '4242;hpctune'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    for k, v in {**CONTROLLER_JOB_ENV, "PATH": os.environ["PATH"]}.items():
        monkeypatch.setenv(k, v)
    assert SlurmCommands().sbatch(str(tmp_path / "controller.sbatch")) == "4242"
    seen = dict(line.split("=", 1) for line in seen_file.read_text().splitlines() if "=" in line)
    assert not [k for k in seen if k.startswith(("SLURM_", "SLURMD_")) and k != "SLURM_CONF"]
    assert seen["SLURM_CONF"] == "/etc/slurm/other.conf" and seen["SBATCH_ACCOUNT"] == "mine"
    assert seen["MY_SLURM_THING"] == "kept"
    assert submission_environment(CONTROLLER_JOB_ENV) == {
        k: v for k, v in CONTROLLER_JOB_ENV.items() if k not in inherited_slurm_variables(CONTROLLER_JOB_ENV)}
