"""Smoke runs of the benchmarks' --quick modes (benchmarks/controller_scale.py,
hyperband_digits.py, hyperband_stragglers.py, bo_quality.py, report_scale.py, and slot_utilisation.py on the
real cluster): they run, print their tables, write their raw
JSON and leave benchmarks/README.md alone. Structure only, never timings."""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
README = BENCH / "README.md"


def load(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def run(name: str, args, tmp_path, capsys):
    readme_before = README.read_text() if README.exists() else None
    module = load(name)
    assert module.main(["--quick", "--results-dir", str(tmp_path), *args]) == 0
    out = capsys.readouterr().out
    assert (README.read_text() if README.exists() else None) == readme_before  # --quick appends nothing
    files = sorted(tmp_path.glob(f"{name}-2*.json"))
    assert len(files) == 1, files
    return module, out, json.loads(files[0].read_text())


def test_controller_scale_quick(tmp_path, capsys):
    module, out, data = run("controller_scale", ["--workdir", str(tmp_path / "work")], tmp_path, capsys)
    for heading in ("Per controller cycle", "Whole studies", "Journal replay", "Memory under 500 MB"):
        assert heading in out
    assert set(data["studies"]) == {"delayed/library", "instant/library"}
    for key, study in data["studies"].items():
        assert study["trials"] == 120 and study["counts"] == {"completed": 120}, key
        assert study["end"]["state"] == "finished"
        assert study["cycles"]["all"]["cycles"] > 0
        assert study["journal_bytes"] > 0 and study["events"] == sum(study["events_by_kind"].values())
        assert study["events_by_kind"]["end"] == 120
        assert study["events_by_kind"]["report"] == 120 * module.REPORTS_PER_TRIAL
    lib = data["studies"]["delayed/library"]
    assert len(lib["idle_rows"]) == module.IDLE_CYCLES and lib["profile"]
    replay = data["replay"]
    assert set(replay) == {"study", "synthetic"}
    for r in replay.values():
        for case in ("parse", "raw", "snapshot"):
            assert r[case]["wall"] >= 0 and r[case]["maxrss_mb"] > 0
        assert r["raw"]["offset"] == r["bytes"] == r["snapshot"]["offset"]
    syn = replay["synthetic"]
    assert syn["raw"]["trials"] == syn["trials"] and syn["raw"]["reports"] == syn["trials"] * 96
    assert syn["parse"]["events"] == syn["events"]
    assert 0 < syn["snapshot_behind_bytes"] < syn["bytes"]


def test_hyperband_digits_quick(tmp_path, capsys):
    module, out, data = run("hyperband_digits", ["--jobs", "1"], tmp_path, capsys)
    assert "| method" in out and "Goal 1" in out and "Goal 2" in out
    methods = list(module.METHODS)
    for label in module.METHODS.values():
        assert label in out
    cfg = data["config"]
    assert data["one_hb_run_epochs"] == 78  # R = 9, eta = 3: 27 + 24 + 27
    assert data["budgets"] == [k * 78 for k in cfg["multiples"]]
    assert data["table"]["cells"] == len(module.all_cells(cfg))
    assert sorted(data["medians"]) == sorted(methods)
    assert all(len(v) == len(cfg["multiples"]) for v in data["medians"].values())
    assert len(data["runs"]) == cfg["seeds"] * len(methods)
    for r in data["runs"]:
        epochs = [e for e, _ in r["points"]]
        values = [v for _, v in r["points"]]
        assert epochs == sorted(epochs) and epochs[-1] <= data["budgets"][-1]
        assert values == sorted(values, reverse=True)  # best so far only improves
    # a second run reuses the learning-curve table instead of training again
    assert module.main(["--quick", "--jobs", "1", "--results-dir", str(tmp_path), "--reuse-curves"]) == 0
    assert "training" not in capsys.readouterr().out


def test_hyperband_stragglers_quick(tmp_path, capsys):
    module, out, data = run("hyperband_stragglers", ["--seeds", "2"], tmp_path, capsys)
    assert "idle hpc-tune" in out and "goal >= 30 %" in out
    assert len(data["summary"]) == len(module.DISTRIBUTIONS) * 2  # S = 4 and 16
    for c in data["cases"]:
        assert 0.0 <= c["idle_hpctune"] < 1.0 and 0.0 <= c["idle_sync"] < 1.0
        # simulated time, not timed: no schedule beats the lower bound
        assert c["makespan_lower_bound"] <= min(c["makespan_hpctune"], c["makespan_sync"]) + 1e-9
        assert c["trials"] == 69  # R = 27, eta = 3: one full Hyperband run


def test_bo_quality_quick(tmp_path, capsys):
    # The peers that are installed run too (the `bench` extra); the others are reported skipped.
    module, out, data = run("bo_quality", ["--jobs", "1", "--problems", "branin,mixed", "--timing-reps", "1"],
                            tmp_path, capsys)
    assert "Goals:" in out and "hpc-tune BO" in out
    ran = {r["method"] for r in data["results"]}
    assert {"hpctune_bo", "hpctune_random"} <= ran and ran | set(data["skipped"]) == set(module.METHODS)
    for r in data["results"]:
        assert len(r["values"]) == len(r["regret"]) == 15
        assert all(b <= a + 1e-12 for a, b in zip(r["regret"], r["regret"][1:]))  # best so far only improves
        assert min(r["regret"]) >= -1e-9  # nothing beats the known optimum
    assert {"hpctune_bo/branin/200", "hpctune_bo/mixed/60"} <= set(data["timing"])


@pytest.mark.slurm
def test_slot_utilisation_quick(tmp_path, capsys):
    module, out, data = run("slot_utilisation", ["--array-trials", "0", "--busy-failures", "0"], tmp_path, capsys)
    assert "Goals:" in out and "state queries per poll" in out
    (pair,) = data["pairs"]
    assert pair["hpc_tune"]["trial_states"] == {"completed": 8}
    assert pair["baseline"]["trial_states"] == {"COMPLETED": 8}
    for r in (pair["hpc_tune"], pair["baseline"]):
        assert r["makespan_s"] >= r["ideal_s"] - 1  # sacct times are whole seconds


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def test_report_scale_quick(tmp_path, capsys):
    if not shutil.which("chromium"):
        pytest.skip("no chromium: scripts/install-chromium.sh installs Debian's")
    pytest.importorskip("matplotlib")
    args = [] if importlib.util.find_spec("plotly") else ["--no-peer"]
    _, out, data = run("report_scale", args, tmp_path, capsys)
    assert "hpc-tune report:" in out
    assert data["trials"] == 300 and data["steps"] == 20 and data["events"] > 300 * 20
    assert data["report"]["ok"] and data["report"]["size_mb"] > 0
    assert data["report_open"]["problems"] == [] and data["report_open"]["median_s"] > 0
