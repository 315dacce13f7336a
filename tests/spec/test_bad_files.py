"""A collection of bad or tricky study files (tests/spec/bad_files/), each with its expected
outcome in bad_files/expected.tsv. Each goes through `validate`, `plan` and `submit` (local
backend, a temporary state directory, in the foreground): never a traceback; what `submit`
refuses, `validate` and `plan` refuse with the same one message naming file and line; what
is accepted runs every trial to the end, and no value ever runs as shell code."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Dict, Tuple

import pytest

from hpc_tune.cli import main

HERE = Path(__file__).resolve().parent / "bad_files"
MESSAGE = re.compile(r"^hpc-tune: error: (?P<file>[^:]+\.ya?ml)(?::(?P<line>\d+))?: ")


def manifest() -> Dict[str, Tuple[str, str, str]]:
    out = {}
    for row in (HERE / "expected.tsv").read_text(encoding="utf-8").splitlines():
        if row.startswith("#") or not row.strip():
            continue
        name, outcome, line, text = row.split("\t")
        out[name] = (outcome, line, text)
    return out


EXPECTED = manifest()


def test_every_file_has_an_expected_outcome_and_there_are_enough():
    files = sorted(p.name for p in HERE.glob("*.yml"))
    assert files == sorted(EXPECTED)
    assert len(files) >= 60
    assert {o for o, _, _ in EXPECTED.values()} == {"refused", "runs"}


def run(capsys, *argv: str) -> Tuple[int, str, str]:
    """One command in this process: an exception other than the CLI's own message would
    escape `main` and fail the test (a traceback, for a user)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "internal error" not in err
    return code, out, err


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A copy of the collection (trials run in the folder submit runs from; nothing may be
    written next to the files), no GPU, no Slurm."""
    work = tmp_path / "files"
    shutil.copytree(HERE, work)
    monkeypatch.chdir(work)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                               if not (Path(p) / "nvidia-smi").exists()))
    return work


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_validate_plan_and_submit_agree(capsys, workdir, tmp_path, name):
    outcome, line, text = EXPECTED[name]
    path = str(workdir / name)
    state = tmp_path / "state"
    results = {
        "validate": run(capsys, "validate", path, "--backend", "local"),
        "plan": run(capsys, "plan", path, "--backend", "local", "--seed", "1"),
        "submit": run(capsys, "submit", path, "--backend", "local", "--foreground", "--state-dir", str(state),
                      "--poll-interval", "1", "--seed", "1"),
    }
    if outcome == "refused":
        messages = set()
        for command, (code, out, err) in results.items():
            assert code == 2, (command, out, err)
            errors = [m for m in err.splitlines() if not m.startswith("warning: ")]
            assert len(errors) == 1, (command, err)
            match = MESSAGE.match(errors[0])
            assert match, (command, errors[0])
            assert Path(match["file"]).is_file() and Path(match["file"]).resolve().is_relative_to(workdir)
            assert match["line"] is not None, (command, errors[0])  # file AND line
            if line:
                assert match["line"] == line, (command, errors[0])
            assert text in errors[0], (command, errors[0])
            assert len(errors[0]) < 500
            messages.add(errors[0])
        assert len(messages) == 1, messages
        assert not state.exists()  # refused before any study was made
        return
    for command, (code, out, err) in results.items():
        assert code == 0, (command, out, err)
    (study_dir,) = list(state.iterdir())
    events = [json.loads(x) for x in (study_dir / "journal.jsonl").read_text().splitlines() if x.strip()]
    ends = [e for e in events if e["e"] == "end"]
    assert ends and all(e["state"] == "completed" for e in ends), ends
    assert [e["state"] for e in events if e["e"] == "study_end"] == ["finished"]
    assert not (workdir / "PWNED").exists()  # no value ran as shell code
