"""`hpc-tune validate` and `hpc-tune plan` (table and --json)."""
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hpc_tune import cli
from hpc_tune.spec import load_spec

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = REPO_ROOT / "tests" / "data"
CORPUS = REPO_ROOT / "tests" / "data" / "polyaxonfiles"  # public files; origins in its sources.txt


def corpus(name):
    if not CORPUS.is_dir():
        pytest.skip(f"polyaxonfile corpus not found; looked for it in {CORPUS}")
    return str(CORPUS / name)


def corpus_files():
    if not CORPUS.is_dir():
        return []
    return sorted(str(p) for p in CORPUS.iterdir() if p.suffix in (".yml", ".yaml"))


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


_RUNNABLE_DIR = Path(tempfile.mkdtemp(prefix="hpc-tune-plan-tests-"))


def runnable(path):
    """``path``, or when it has no command (public files point at a component with urlRef;
    `plan`, like `submit`, refuses those) a copy with a `run.cmd` that uses every parameter."""
    spec = load_spec(str(path))
    if spec.run.cmd is not None:
        return str(path)
    names = list(spec.space) + ([spec.algorithm.resource.name] if hasattr(spec.algorithm, "resource") else [])
    copy = _RUNNABLE_DIR / Path(path).name
    text = Path(path).read_text()
    text = "\n".join(line for line in text.splitlines() if not line.startswith(("urlRef:", "pathRef:")))
    copy.write_text(text + "\nrun:\n  cmd: echo " + " ".join(f"{{{{ {n} }}}}" for n in names) + "\n")
    return str(copy)


def plan_json(capsys, path, *extra):
    code, out, err = run_cli(capsys, "plan", "--json", runnable(path), *extra)
    assert code == 0, err
    return json.loads(out), err


# --------------------------------------------------------------------------- validate


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: Path(p).name)
def test_validate_every_corpus_file(capsys, path, tmp_path):
    spec = load_spec(path)  # every public file loads
    code, out, err = run_cli(capsys, "validate", path)
    if spec.run.cmd is None:
        # Its command is a component behind urlRef or a pathRef that is not here: submit
        # refuses it, so validate does, at that line, with the same message.
        assert code == 2 and out == ""
        message = err.strip().splitlines()[-1]
        assert re.match(rf"hpc-tune: error: {re.escape(path)}:\d+: (urlRef|pathRef): ", message), message
        code, _, submit_err = run_cli(capsys, "submit", path, "--backend", "local", "--state-dir",
                                      str(tmp_path / "state"))
        assert code == 2 and submit_err.strip().splitlines()[-1] == message
        assert not (tmp_path / "state").exists()  # refused before any study was made
        return
    assert code == 0, err
    assert out.strip() == (f"{path}: ok ({spec.algorithm.kind}, {len(spec.space)} parameters, "
                           f"generation {spec.generation})")
    assert "error" not in err
    # every warning of the spec is printed, one line each
    assert err.count("warning: ") == len(spec.warnings)


# ------------------------------------------------------------------------ plan --json


def test_plan_json_grid(capsys):
    plan, err = plan_json(capsys, str(DATA / "grid_maximize.yml"))
    assert plan["algorithm"] == "grid"
    assert plan["parameters"] == {"lr": "logspace", "depth": "range"}
    assert plan["trials"] == [
        {"params": {"lr": 0.001, "depth": 1}}, {"params": {"lr": 0.001, "depth": 2}},
        {"params": {"lr": 0.001, "depth": 3}}, {"params": {"lr": 0.01, "depth": 1}},
        {"params": {"lr": 0.01, "depth": 2}},
    ]
    assert plan["n_trials"] == 5
    assert plan["metric"] == {"name": "accuracy", "optimization": "maximize"}
    assert plan["concurrency"] == 2
    assert plan["generation"] == "C"
    assert plan["warnings"] == []
    assert plan["command"].startswith("python train.py")


def test_plan_json_random_with_seed(capsys):
    path = corpus("genC_examples_keras_mnist.yml")
    plan, _ = plan_json(capsys, path, "--seed", "0")
    assert plan["algorithm"] == "random"
    assert plan["seed"] == 0
    assert plan["parameters"] == {
        "conv1_size": "values", "conv2_size": "values", "dropout": "uniform", "hidden1_size": "range",
        "optimizer": "pvalues", "log_learning_rate": "range", "epochs": "values",
    }
    assert len(plan["trials"]) == plan["n_trials"] == 50
    assert all(set(t) == {"params"} for t in plan["trials"])
    assert all(set(t["params"]) == set(plan["parameters"]) for t in plan["trials"])
    assert len({json.dumps(t["params"], sort_keys=True) for t in plan["trials"]}) == 50
    again, _ = plan_json(capsys, path, "--seed", "0")
    assert again["trials"] == plan["trials"]
    other, _ = plan_json(capsys, path, "--seed", "1")
    assert other["trials"] != plan["trials"]


def test_plan_json_seed_from_the_file(capsys):
    plan, _ = plan_json(capsys, str(DATA / "random_pvalues.yml"))
    assert plan["seed"] == 0
    assert plan["n_trials"] == 6
    assert plan["parameters"] == {"opt": "pvalues", "lr": "quniform"}
    assert plan["command"] == "echo {{ opt }} {{ lr }}" and plan["command_reading"] == "shell"


def test_plan_refuses_a_file_without_a_command_as_submit_does(capsys):
    path = str(DATA / "random_pvalues.yml")
    for command in ("plan", "validate"):
        code, out, err = run_cli(capsys, command, path, "--backend", "local")
        assert code == 2 and out == ""
        assert err.startswith(f"hpc-tune: error: {path}:1: no `run` section: ")


def test_plan_json_mapping(capsys):
    plan, _ = plan_json(capsys, corpus("genD_quickstart_automation_mapping.yml"))
    assert plan["algorithm"] == "mapping"
    assert plan["concurrency"] is None
    assert plan["trials"] == [
        {"params": {"learning_rate": 0.001, "dropout": 0.25, "conv_activation": "relu", "epochs": 5}},
        {"params": {"learning_rate": 0.01, "dropout": 0.5, "conv_activation": "sigmoid", "epochs": 5}},
    ]


@pytest.mark.parametrize("name, n_initial, n_iter, concurrency", [
    ("genC_quickstart_bo.yml", 40, 15, 40),
    ("genD_quickstart_automation_bo.yml", 40, 10, 40),
    ("genB_quickstart_bo.yml", 10, 5, 2),
])
def test_plan_json_bayes(capsys, name, n_initial, n_iter, concurrency):
    plan, _ = plan_json(capsys, corpus(name))
    assert plan["algorithm"] == "bayes"
    assert plan["n_initial_trials"] == n_initial
    assert plan["n_iterations"] == n_iter
    assert plan["n_trials"] == n_initial + n_iter
    assert plan["concurrency"] == concurrency
    assert "trials" not in plan


def test_plan_json_hyperopt(capsys):
    plan, _ = plan_json(capsys, corpus("genD_quickstart_hyperopt.yaml"))
    assert plan["algorithm"] == "hyperopt"
    assert plan["hyperopt_algorithm"] == "tpe"
    assert plan["n_trials"] == 20
    assert any("matrix.tuner" in w for w in plan["warnings"])


def test_plan_json_early_stopping(capsys):
    plan, _ = plan_json(capsys, corpus("genD_quickstart_sched_early_stopping.yaml"))
    es = plan["early_stopping"]
    assert es["thresholds"] == [{"metric": "accuracy", "value": 0.9, "optimization": "maximize"}]
    assert es["failure_percent"] == 0.3


def test_plan_warnings_in_json_and_on_stderr(capsys):
    path = str(DATA / "warnings_hints.yml")
    plan, err = plan_json(capsys, path, "--seed", "1")
    logspace = [w for w in plan["warnings"] if "logspace takes exponents" in w]
    loguniform = [w for w in plan["warnings"] if "loguniform bounds are natural logs" in w]
    assert len(logspace) == 1 and len(loguniform) == 1
    assert "geomspace: 0.01:0.1:NUM" in logspace[0]
    assert f"{path}:10: hptuning.matrix.learning_rate.logspace" in logspace[0]
    assert "[-9.21, -4.605]" in loguniform[0]
    for w in logspace + loguniform:
        assert f"warning: {w}" in err.splitlines()
    # the plan also samples what the user wrote: values near 1, as numpy means it
    assert all(1.0 < t["params"]["learning_rate"] < 1.3 for t in plan["trials"])


def test_plan_notes_when_random_stops_short(capsys, tmp_path):
    path = tmp_path / "coarse.yml"
    path.write_text("matrix:\n  kind: random\n  numRuns: 100\n  params:\n"
                    "    q: {kind: quniform, value: '0:1:0.5'}\n")
    plan, err = plan_json(capsys, str(path), "--seed", "3")
    assert plan["n_trials"] == 3
    assert any("3 of 100" in w for w in plan["warnings"])
    assert "3 of 100" in err


def test_plan_hyperband_brackets(capsys, tmp_path):
    hyperband = pytest.importorskip("hpc_tune.search.hyperband")
    if not hasattr(hyperband, "brackets"):
        pytest.skip("hpc_tune.search.hyperband.brackets is not written yet")
    path = tmp_path / "hb.yml"
    path.write_text(
        "matrix:\n  kind: hyperband\n  maxIterations: 81\n  eta: 3\n  resource: {name: epochs, type: int}\n"
        "  metric: {name: loss, optimization: minimize}\n  params:\n"
        "    lr: {kind: loguniform, value: [-9, -2]}\n")
    plan, _ = plan_json(capsys, str(path))
    assert plan["algorithm"] == "hyperband"
    assert plan["resource"] == {"name": "epochs", "type": "int", "max_iter": 81, "eta": 3}
    table = {b["bracket"]: [(r["n"], r["resource"]) for r in b["rungs"]] for b in plan["brackets"]}
    assert table == {  # DIALECT.md, Li et al.
        4: [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
        3: [(34, 3), (11, 9), (3, 27), (1, 81)],
        2: [(15, 9), (5, 27), (1, 81)],
        1: [(8, 27), (2, 81)],
        0: [(5, 81)],
    }
    assert sum(b["rungs"][0]["n"] for b in plan["brackets"]) == 143  # fresh configurations
    assert plan["n_trials"] == sum(n for rungs in table.values() for n, _ in rungs)
    code, out, _ = run_cli(capsys, "plan", runnable(path))
    assert code == 0
    assert "81 @ 1" in out and "5 @ 81" in out and "iteration" not in out
    assert plan["iterations"] == 1
    path.write_text(path.read_text().replace("  eta: 3\n", "  eta: 3\n  iterations: 3\n"))
    again, _ = plan_json(capsys, str(path))
    assert again["iterations"] == 3 and again["brackets"] == plan["brackets"]
    assert again["n_trials"] == 3 * plan["n_trials"]
    code, out, _ = run_cli(capsys, "plan", runnable(path))
    assert code == 0 and "run 3 times" in out and f"trials:       {3 * plan['n_trials']}" in out


# ------------------------------------------------------------------------- plan table


def test_plan_table_lists_parameters_and_trials(capsys):
    code, out, _ = run_cli(capsys, "plan", str(DATA / "grid_maximize.yml"))
    assert code == 0
    assert "algorithm:    grid" in out
    assert "lr (logspace)" in out and "depth (range)" in out
    header = next(line for line in out.splitlines() if line.strip().startswith("#"))
    assert "lr" in header and "depth" in header
    assert "trials:       5" in out
    assert "accuracy (maximize)" in out


def test_plan_table_for_corpus_files(capsys):
    code, out, _ = run_cli(capsys, "plan", corpus("genC_quickstart_bo.yml"), "--seed", "2")
    assert code == 0
    for name in ("learning_rate", "dropout", "activation"):
        assert name in out
    assert "40 random initial trials, then 15 model-based" in out
    assert "(read as a shell line)" in out
    code, out, _ = run_cli(capsys, "plan", runnable(corpus("genD_quickstart_automation_mapping.yml")))
    assert code == 0
    assert "unbounded" in out  # concurrency
    assert "conv_activation" in out and "sigmoid" in out


def test_plan_table_truncates_long_plans(capsys, tmp_path):
    path = tmp_path / "big.yml"
    path.write_text("matrix:\n  kind: grid\n  params:\n    a: {kind: range, value: '0:12:1'}\n"
                    "    b: {kind: choice, value: [x, y, z, w, v]}\n")
    code, out, _ = run_cli(capsys, "plan", runnable(path))
    assert code == 0
    assert "trials:       60" in out
    lines = out.splitlines()
    note = lines.index("... and 10 more (--json lists them all)")
    assert lines[note - 1].split() == ["49", "9", "v"]  # rows 0..49, then the note


# ------------------------------------------------------------------- the real command


def test_console_script_plan_json(tmp_path):
    exe = shutil.which("hpc-tune")
    argv = [exe] if exe else [sys.executable, "-m", "hpc_tune"]
    proc = subprocess.run([*argv, "plan", "--json", "--seed", "4", str(DATA / "warnings_hints.yml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["algorithm"] == "random" and plan["seed"] == 4
    assert len(plan["trials"]) == 4
    assert "warning: " in proc.stderr and "logspace takes exponents" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_plan_table_shows_an_integer_beyond_float_range(capsys, tmp_path):
    # found by tests/spec/test_fuzz.py: tabulate formats numeric columns through float()
    path = tmp_path / "huge.yml"
    path.write_text("matrix:\n  kind: mapping\n  values:\n    - {x: 0.5}\n    - {x: 1" + "0" * 400 + "}\n"
                    "run:\n  cmd: echo {{ x }}\n")
    code, out, err = run_cli(capsys, "plan", str(path), "--backend", "local")
    assert code == 0, err
    assert "1" + "0" * 400 in out
