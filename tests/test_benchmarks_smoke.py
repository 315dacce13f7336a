"""Smoke runs of the benchmarks' --quick modes (benchmarks/controller_scale.py,
hyperband_digits.py, hyperband_stragglers.py (with ASHA), bo_quality.py, sampler_quality.py,
mf_digits.py, mf_digits_cells.py, mf_hartmann.py, pbt_toy.py, pbt_digits.py, report_scale.py, and slot_utilisation.py on
the real cluster): they run, print their tables, write their raw
JSON and leave benchmarks/README.md alone. Structure only, never timings."""
from __future__ import annotations

import importlib.util
import json
import math
import os
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


def test_hyperband_stragglers_asha_quick(tmp_path, capsys):
    _, out, data = run("hyperband_stragglers", ["--seeds", "2", "--dists", "lognormal1"], tmp_path, capsys)
    assert "ASHA seeds reaching it" in out
    assert len(data["asha_summary"]) == 2  # S = 4 and 16, lognormal
    for c in data["cases"]:
        assert c["reach_sync"] <= c["makespan_sync"] + 1e-9  # the synchronous run reaches its own best
        assert c["reach_hpctune"] is not None  # the same trials: hpc-tune's Hyperband reaches it too
        assert 0.0 <= c["idle_asha"] < 1.0 and c["asha_trials"] > 0
        if c["reach_asha"] is not None:
            assert c["reach_asha"] == c["asha_stop"] <= 2 * c["makespan_sync"]


# the peers that are installed run too (the `bench` extra); the others are reported skipped. Ray Tune is
# left out of the smoke runs: it starts a runtime of its own (tens of seconds)
MF_QUICK = ("hpctune_hb,hpctune_asha,hpctune_bohb,hpctune_asha_kde,hpctune_hb_model,hpctune_asha_model,"
            "optuna_hb_tpe,optuna_sha_tpe,smac_mf,dehb,hpbandster_bohb")


IN_CI = os.environ.get("CI", "").lower() == "true"  # CI installs every extra: no peer may be missing there


def check_mf(module, out, data, budget):
    ran = {r["method"] for r in data["runs"]}
    assert not (IN_CI and data["skipped"]), data["skipped"]
    hpctune = {m for m in MF_QUICK.split(",") if m.startswith("hpctune_")}
    assert hpctune <= ran  # hpc-tune's own methods always run
    assert ran | set(data["skipped"]) == set(MF_QUICK.split(","))
    for m in ran:
        assert module._mf.METHODS[m][0] in out
    for r in data["runs"]:
        spent = [e for e, _ in r["points"]]
        best = [v for _, v in r["points"]]
        assert spent == sorted(spent) and (not spent or spent[-1] <= budget)
        assert best == sorted(best, reverse=True)  # best so far only improves
        assert r["spent"] <= budget and r["evaluations"] > 0
    assert "/ hpc-tune Hyperband's" in out


def test_mf_digits_quick(tmp_path, capsys):
    module, out, data = run("mf_digits", ["--jobs", "1", "--methods", MF_QUICK], tmp_path, capsys)
    assert data["R"] == 9 and data["multiples"] == [2, 5]
    check_mf(module, out, data, 5 * 9)
    table, _ = module.hd.build_table(module.hd.QUICK, 1, reuse=True, results_dir=tmp_path)  # the cached table
    lowest = min(min(curve) for curve in table.values())
    for r in data["runs"]:
        assert all(v >= lowest for _, v in r["points"])  # nothing beats the table's lowest error


def test_mf_digits_cells_quick(tmp_path, capsys):
    _, out, data = run("mf_digits_cells", ["--jobs", "1", "--methods", "hpctune_hb,hpctune_bohb"], tmp_path, capsys)
    assert "distinct cells trained" in out and not data["skipped"]
    assert {(r["method"], r["seed"]) for r in data["runs"]} == {(m, s) for m in ("hpctune_hb", "hpctune_bohb")
                                                                for s in (0, 1)}
    for r in data["runs"]:
        assert data["cells"] >= r["tried"] >= r["at_r"] >= r["top_at_r"] and r["at_r"] >= 1


def test_mf_hartmann_quick(tmp_path, capsys):
    if not IN_CI:
        pytest.importorskip("mfpbench", reason="mf-prior-bench carries the problem (the `bench` extra)")
    module, out, data = run("mf_hartmann", ["--jobs", "1", "--methods", MF_QUICK], tmp_path, capsys)
    check_mf(module, out, data, 5 * 9)
    for r in data["runs"]:
        assert all(v >= -1e-6 for _, v in r["points"])  # a regret: nothing beats Hartmann6's minimum


def test_pbt_toy_quick(tmp_path, capsys):
    _, out, data = run("pbt_toy", [], tmp_path, capsys)
    assert "no exploitation" in out and "goal fewer steps" in out
    for c in data["cases"]:
        assert c["trials"] == 2 * 25  # population 2, 100 steps in intervals of 4
        assert c["exploits"] > 0 and c["checkpoints_peak"] <= 2 * 2  # each member's latest + the live ones
        assert c["pbt_final_best"] <= 1.2 and c["no_exploit_final_best"] <= 1.2


def test_pbt_digits_quick(tmp_path, capsys):
    _, out, data = run("pbt_digits", ["--jobs", "1"], tmp_path, capsys)
    assert "hpc-tune PBT" in out and "random search" in out
    by = {m: [r for r in data["runs"] if r["method"] == m] for m in ("hpctune_pbt", "random")}
    assert all(len(v) == 2 for v in by.values())
    for r in by["hpctune_pbt"] + by["random"]:
        assert 0.0 <= r["val"] <= 1.0 and 0.0 <= r["test"] <= 1.0
        assert r["epochs"] == 4 * 6  # population 4 x 6 epochs: the same epochs for both


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


def test_sampler_quality_quick(tmp_path, capsys):
    _, out, data = run("sampler_quality", [], tmp_path, capsys)
    assert "| problem | algorithm | sampler |" in out
    combos = {(r["problem"], r["algorithm"], r["sampler"]) for r in data["runs"]}
    assert combos == {("branin", a, s) for a in ("hyperband", "asha") for s in ("random", "kde", "model")}
    for entry in data["runs"]:
        (run_,) = entry["runs"]
        assert run_["spent_fe"] >= 10.0 and run_["trials"] > 0
        assert 0 <= run_["regret"]["1.0"] < float("inf")  # something reached the full resource


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


def test_seed_noise_tells_a_real_gap_from_chance():
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    import _mf

    apart = _mf.seed_noise([1.0, 1.1, 1.2, 1.3, 1.4, 1.5], [2.0, 2.1, 2.2, 2.3, 2.4, 2.5])
    same = _mf.seed_noise([1.0, 2.0, 1.5, 1.2, 1.8, 1.1], [1.1, 1.9, 1.4, 1.3, 1.7, 1.0])
    assert apart == "; Mann-Whitney p = 0.00" and float(same.rsplit("= ", 1)[1]) > 0.5
    assert _mf.seed_noise([1.0, 2.0], [1.5, 3.0, 4.0]) == ""  # too few seeds to say
    assert _mf.seed_noise([math.inf] * 5, [1.0] * 5) == ""  # nothing at that budget yet
