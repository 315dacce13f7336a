"""Never a traceback: every error that reaches the command line is one message and an exit
code, 2 for the user's mistakes, 1 for the environment; ``--debug`` shows the traceback."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hpc_tune import cli
from hpc_tune.errors import (
    BackendBusy,
    BackendError,
    EnvironmentProblem,
    HpcTuneError,
    JournalError,
    SpecError,
    UserError,
)
from hpc_tune.journal import FORMAT_VERSION


def newer_journal(tmp_path):
    study = tmp_path / "s"
    study.mkdir()
    (study / "journal.jsonl").write_text(json.dumps({"v": FORMAT_VERSION + 1, "t": 0, "e": "study", "id": "s",
                                                     "seed": 1}) + "\n")
    return study


def test_one_error_tree():
    for cls in (UserError, SpecError, EnvironmentProblem, JournalError, BackendError, BackendBusy):
        assert issubclass(cls, HpcTuneError)
    assert UserError.exit_code == SpecError.exit_code == 2
    assert JournalError.exit_code == BackendError.exit_code == BackendBusy.exit_code == 1
    assert not issubclass(JournalError, UserError) and not issubclass(BackendError, UserError)


def test_a_journal_from_a_newer_hpc_tune_is_one_message_and_exit_1(tmp_path, capsys):
    study = newer_journal(tmp_path)
    for command in (["status", str(study)], ["best", str(study)], ["export", str(study)]):
        assert cli.main(command) == 1
        err = capsys.readouterr().err
        assert err.startswith("hpc-tune: error: ") and "newer hpc-tune" in err and "Traceback" not in err
        assert err.count("\n") == 1


def test_debug_shows_the_traceback(tmp_path):
    study = newer_journal(tmp_path)
    for argv in (["--debug", "status", str(study)], ["status", str(study), "--debug"]):
        proc = subprocess.run([sys.executable, "-m", "hpc_tune", *argv], capture_output=True, text=True)
        assert proc.returncode != 0 and "Traceback" in proc.stderr and "JournalError" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "hpc_tune", "status", str(study)], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("error, code", [(BackendBusy("sbatch: Socket timed out"), 1),
                                         (BackendError("sbatch: error: invalid partition"), 1),
                                         (UserError("no study 'x'"), 2),
                                         (RuntimeError("a bug"), 1)])
def test_backend_errors_and_bugs_are_one_message(tmp_path, capsys, monkeypatch, error, code):
    def cancel(study_dir):
        raise error

    monkeypatch.setattr(cli, "cancel_study", cancel)
    monkeypatch.setattr(cli, "find_study", lambda ref, state_dir=None: str(tmp_path))
    assert cli.main(["cancel", "x"]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(error) in err and err.count("\n") == 1
    if isinstance(error, RuntimeError):
        assert "internal error" in err and "--debug" in err
