"""The example studies of configs/: one short file per algorithm, each loads, plans and runs
end to end on the local backend with its tiny trial program (configs/quadratic.py), from the
repository root as the README shows. The digits examples (minutes each) are only validated
here; scripts/demo.sh runs hyperband_digits.yml."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpc_tune.cli import main
from hpc_tune.spec import load_spec

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = REPO_ROOT / "configs"
SHORT = {  # file: trials it runs
    "grid.yml": 6, "random.yml": 8, "hyperband.yml": 9 + 3 + 1 + 5 + 1 + 3, "bo.yml": 8, "hyperopt.yml": 8,
    "iterative.yml": 6, "mapping.yml": 3,
}
README = (REPO_ROOT / "README.md").read_text()


def test_one_short_example_per_algorithm_and_the_readme_shows_them():
    kinds = set()
    for name in SHORT:
        code = main(["validate", str(CONFIGS / name), "--backend", "local"])
        assert code == 0, name
        assert f"configs/{name}" in README, f"the README does not show configs/{name}"
        kinds.add(load_spec(str(CONFIGS / name)).algorithm.kind)
    assert kinds == {"grid", "random", "hyperband", "bayes", "hyperopt", "iterative", "mapping"}
    for name in sorted(p.name for p in CONFIGS.glob("*.yml")):
        assert main(["validate", str(CONFIGS / name), "--backend", "local"]) == 0, name


@pytest.mark.parametrize("name", sorted(SHORT))
def test_example_runs_locally_to_the_end(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO_ROOT)  # the command lines are relative to the repository root
    state = tmp_path / "state"
    assert main(["plan", f"configs/{name}", "--backend", "local"]) == 0
    code = main(["submit", f"configs/{name}", "--backend", "local", "--state-dir", str(state), "--poll-interval", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    (study_dir,) = list(state.iterdir())
    events = [json.loads(x) for x in (study_dir / "journal.jsonl").read_text().splitlines() if x.strip()]
    ends = [e for e in events if e["e"] == "end"]
    assert len(ends) == SHORT[name], out
    assert all(e["state"] == "completed" and isinstance(e["value"], float) for e in ends), ends
    assert [e["state"] for e in events if e["e"] == "study_end"] == ["finished"]
    assert "best trial" in out
