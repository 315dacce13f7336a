"""Every real polyaxonfile of the corpus (tests/data/polyaxonfiles) loads, with the meaning DIALECT.md gives it."""
from pathlib import Path

import pytest

from hpc_tune.space import Discrete, Uniform
from hpc_tune.spec import load_spec, render
from hpc_tune.spec.model import (
    BayesConfig,
    GridConfig,
    HyperbandConfig,
    HyperoptConfig,
    MappingConfig,
    Metric,
    RandomConfig,
    Threshold,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS = REPO_ROOT / "tests" / "data" / "polyaxonfiles"  # public files; origins in its sources.txt
DATA = REPO_ROOT / "tests" / "data"


def corpus_files():
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.iterdir() if p.suffix in (".yml", ".yaml"))


@pytest.fixture(scope="module")
def corpus_dir():
    if not CORPUS.is_dir():
        pytest.skip(f"polyaxonfile corpus not found; looked for it in {CORPUS}")
    return CORPUS


@pytest.fixture(scope="module")
def load(corpus_dir):
    cache = {}

    def _load(name):
        if name not in cache:
            cache[name] = load_spec(str(corpus_dir / name))
        return cache[name]

    return _load


def warnings_matching(spec, *needles):
    return [w for w in spec.warnings if all(n in w for n in needles)]


# ----------------------------------------------------------------- every file loads


def test_corpus_is_not_empty(corpus_dir):
    files = corpus_files()
    assert len(files) >= 20
    for gen in "ABCD":
        assert any(p.name.startswith(f"gen{gen}_") for p in files), f"no generation {gen} file in {corpus_dir}"


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_every_corpus_file_loads(path, load):
    spec = load(path.name)
    expected_gen = path.name[3]
    assert spec.generation == expected_gen
    assert len(spec.space) >= 1
    assert spec.path == str(path)
    for name, param in spec.space.items():
        assert name.isidentifier()
        assert param.kind
    # Every warning is located in the file it came from.
    for w in spec.warnings:
        assert w.startswith(str(path)), w


def test_sources_lists_every_corpus_file(corpus_dir):
    listed = set()
    for line in (corpus_dir / "sources.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            listed.add(line.split("\t")[0])
    assert {p.name for p in corpus_files()} <= listed


# ------------------------------------------------------------------------- generation A


def test_genA_early_stopping(load):
    spec = load("genA_quickstart_early_stopping.yml")
    assert spec.generation == "A"
    assert isinstance(spec.algorithm, RandomConfig)
    assert spec.algorithm.n_trials == 10
    assert spec.concurrency == 2  # concurrent_experiments
    assert spec.seed is None
    # `higher: true` is maximize; the study ranks by the metric it stops on.
    assert spec.early_stopping.thresholds == (Threshold("accuracy", 0.9, "maximize"),)
    assert spec.metric == Metric("accuracy", "maximize")
    assert spec.run.constants == {"batch_size": 128, "num_steps": 500, "num_epochs": 1}
    assert list(spec.space) == ["learning_rate", "dropout", "activation"]
    assert spec.space["learning_rate"].values == (0.001, 0.00325, 0.0055, 0.00775, 0.01)


def test_genA_uppercase_random_without_n_runs_the_whole_space(load):
    spec = load("genA_quickstart_hyperparams.yml")
    assert isinstance(spec.algorithm, RandomConfig)  # search_method: RANDOM
    assert spec.algorithm.n_trials == 5 * 2 * 2
    assert spec.concurrency == 2
    assert warnings_matching(spec, "no `n_experiments`", "20")


def test_genA_kubernetes_run_keys_ignored_with_one_warning_each(load):
    spec = load("genA_quickstart_early_stopping.yml")
    for key in ("image", "steps"):
        found = warnings_matching(spec, f"`{key}`", "Kubernetes")
        assert len(found) == 1, spec.warnings
        assert f"run.{key}" in found[0]


def test_genA_fraction_of_the_grid():
    spec = load_spec(str(DATA / "genA_fraction_grid.yml"))
    assert spec.generation == "A"
    assert spec.algorithm == GridConfig(n_trials=6)  # 0.5 of 3 x 4
    assert spec.concurrency == 1  # the default of generations A-C


# ------------------------------------------------------------------------- generation B


def test_genB_bo(load):
    spec = load("genB_quickstart_bo.yml")
    algo = spec.algorithm
    assert spec.generation == "B"
    assert isinstance(algo, BayesConfig)
    assert spec.concurrency == 2
    assert spec.seed is None
    assert algo.n_initial_trials == 10
    assert algo.n_iterations == 5
    assert algo.acquisition == "ucb"
    assert algo.kappa == 2.576
    assert algo.gaussian_process.kernel == "matern"
    assert algo.gaussian_process.nu == 1.9
    assert algo.gaussian_process.length_scale == 1.0
    assert algo.gaussian_process.n_restarts_optimizer == 0
    assert spec.metric == Metric("loss", "minimize")
    assert spec.space["learning_rate"] == Uniform(0.001, 0.01, kind="uniform")


def test_genB_hyperband_and_pvalues_scaling(load):
    spec = load("genB_quickstart_hyperband.yml")
    algo = spec.algorithm
    assert isinstance(algo, HyperbandConfig)
    assert (algo.max_iter, algo.eta) == (10, 3)
    assert algo.resource.name == "num_steps"
    assert algo.resource.type == "int"
    assert algo.resume is False
    assert algo.metric == Metric("loss", "minimize")
    assert spec.metric == algo.metric
    assert spec.concurrency == 2
    act = spec.space["activation"]
    assert isinstance(act, Discrete)
    assert act.values == ("relu", "sigmoid")
    assert act.probabilities == pytest.approx((1 / 9, 8 / 9))
    found = warnings_matching(spec, "activation", "0.9", "scaled to 1")
    assert len(found) == 1
    assert ":25:" in found[0]  # the line of `pvalues:`


def test_genB_random(load):
    spec = load("genB_quickstart_hyperparams.yml")
    assert spec.generation == "B"
    assert spec.algorithm == RandomConfig(n_trials=10)
    assert spec.concurrency == 2


def test_genA_to_C_concurrency_defaults_to_one(tmp_path):
    files = {
        "a.yml": "matrix:\n  x: {values: [1, 2]}\n",
        "b.yml": "kind: group\nsettings:\n  matrix:\n    x: {values: [1, 2]}\n",
        "c.yml": "kind: group\nhptuning:\n  matrix:\n    x: {values: [1, 2]}\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        spec = load_spec(str(tmp_path / name))
        assert spec.generation == name[0].upper()
        assert spec.concurrency == 1, name
        assert isinstance(spec.algorithm, GridConfig)


# ------------------------------------------------------------------------- generation C


def test_genC_quickstart_bo(load):
    spec = load("genC_quickstart_bo.yml")
    algo = spec.algorithm
    assert spec.generation == "C"
    assert isinstance(algo, BayesConfig)
    assert spec.concurrency == 40
    assert algo.n_initial_trials == 40
    assert algo.n_iterations == 15
    assert algo.kappa == 2.576
    assert algo.gaussian_process.nu == 1.9
    assert spec.metric == Metric("loss", "minimize")
    # Constants come from `inputs` defaults here.
    assert spec.run.constants["batch_size"] == 128
    assert spec.run.constants["num_steps"] == 100
    assert spec.run.constants["activation"] == "relu"
    assert spec.space["dropout"].values == (0.2, 0.22, 0.25, 0.3, 0.35)


def test_genC_grid(load):
    spec = load("genC_quickstart_grid.yml")
    assert spec.algorithm == GridConfig(n_trials=None)
    assert spec.concurrency == 5
    assert spec.space.grid_size() == 20


def test_genC_hyperband(load):
    spec = load("genC_quickstart_hyperband.yml")
    algo = spec.algorithm
    assert isinstance(algo, HyperbandConfig)
    assert (algo.max_iter, algo.eta) == (500, 3)
    assert algo.resource.name == "num_steps"
    assert spec.concurrency == 20
    assert warnings_matching(spec, "0.9", "scaled to 1")
    # the resource is a known placeholder even though it is not a parameter
    assert "num_steps" not in spec.space


def test_genC_early_stopping_optimization_key(load):
    spec = load("genC_quickstart_early_stopping.yml")
    assert spec.early_stopping.thresholds == (Threshold("accuracy", 0.9, "maximize"),)
    assert spec.algorithm == RandomConfig(n_trials=10)


def test_genC_params_section_as_constants(load):
    spec = load("genC_quickstart_hyperparams.yml")
    assert spec.run.constants == {"batch_size": 128, "num_steps": 500, "num_epochs": 1}
    assert spec.algorithm == RandomConfig(n_trials=10)


def test_genC_keras_mnist_kinds(load):
    spec = load("genC_examples_keras_mnist.yml")
    space = spec.space
    assert spec.algorithm == RandomConfig(n_trials=50)
    assert spec.concurrency == 5
    assert space["hidden1_size"].values == tuple(range(10, 600, 50))  # stop excluded
    assert space["log_learning_rate"].values == (-5, -4, -3, -2, -1)
    assert space["dropout"] == Uniform(0, 1, kind="uniform")
    assert space["optimizer"].probabilities == (0.5, 0.3, 0.2)
    assert not warnings_matching(spec, "scaled")  # sums to 1


def test_genC_sklearn_range_list_read_as_values(load):
    spec = load("genC_examples_sklearn_rf.yml")
    assert isinstance(spec.algorithm, GridConfig)  # no algorithm block: grid
    assert spec.concurrency == 3
    assert spec.space["n_estimators"].values == (3, 4, 5, 6)
    found = warnings_matching(spec, "n_estimators", "range", "[3, 4, 5, 6]", "values")
    assert len(found) == 1
    assert ":15:" in found[0]
    assert spec.space.grid_size() == 12


def test_genC_sklearn_suggested_parameter_overrides_declaration(load):
    spec = load("genC_examples_sklearn_rf.yml")
    assert spec.run.constants["min_samples_leaf"] == 80
    values = dict(spec.run.constants)
    values.update({"n_estimators": 5, "min_samples_leaf": 120})
    cmd = render(spec.run.cmd, values)
    assert "--min_samples_leaf=120" in cmd
    assert "--max_features=3" in cmd
    assert "--n_estimators=5" in cmd


def test_genC_xgboost_ranges(load):
    spec = load("genC_examples_xgboost_iris.yml")
    assert spec.space["max_depth"].values == (2, 4, 6)
    assert spec.space.size() == 5 * 3 * 2 * 3
    assert spec.algorithm == RandomConfig(n_trials=50)


@pytest.mark.parametrize("name", [
    "genC_examples_keras_mnist.yml", "genC_examples_pytorch_mnist.yml", "genC_examples_sklearn_rf.yml",
    "genC_examples_tf_cifar10.yml", "genC_quickstart_bo.yml", "genC_quickstart_grid.yml",
])
def test_genC_build_section_ignored_with_one_warning(load, name):
    spec = load(name)
    found = warnings_matching(spec, "`build`", "Kubernetes")
    assert len(found) == 1
    assert ": build: " in found[0]


def test_genB_kubernetes_run_keys_ignored(load):
    spec = load("genB_quickstart_bo.yml")
    assert len(warnings_matching(spec, "`image`", "Kubernetes")) == 1
    assert len(warnings_matching(spec, "`build_steps`", "Kubernetes")) == 1


def test_genC_cmd_with_trailing_continuation_renders(load):
    spec = load("genC_examples_tf_cifar10.yml")
    values = dict(spec.run.constants)
    values.update({"learning_rate": 0.001, "num_layers": 44, "momentum": 0.9})
    cmd = render(spec.run.cmd, values)
    # `\` + newline continuations become plain spaces; no stray backslash reaches the shell
    assert "\\" not in cmd
    assert cmd.split() == ["python", "run.py", "--train-batch-size=128", "--train-steps=5000",
                           "--learning-rate=0.001", "--momentum=0.9"]
    assert warnings_matching(spec, "does not use", "num_layers")


# ------------------------------------------------------------------------- generation D


def test_genD_bo(load):
    spec = load("genD_quickstart_automation_bo.yml")
    algo = spec.algorithm
    assert spec.generation == "D"
    assert isinstance(algo, BayesConfig)
    assert algo.n_initial_trials == 40  # numInitialRuns
    assert algo.n_iterations == 10  # maxIterations
    assert algo.kappa == 1.2
    assert algo.gaussian_process.nu == 1.9
    assert algo.gaussian_process.length_scale == 1.0
    assert spec.concurrency == 40
    assert spec.metric == Metric("loss", "minimize")
    assert spec.run.cmd is None  # urlRef: nothing to fetch


def test_genD_hyperband(load):
    spec = load("genD_quickstart_automation_hyperband.yml")
    algo = spec.algorithm
    assert isinstance(algo, HyperbandConfig)
    assert (algo.max_iter, algo.eta) == (10, 3)
    assert algo.resource.name == "epochs"
    assert algo.resource.type == "int"
    assert spec.concurrency == 20
    assert warnings_matching(spec, "conv_activation", "0.9", "scaled to 1")


def test_genD_hyperopt(load):
    spec = load("genD_quickstart_hyperopt.yaml")
    algo = spec.algorithm
    assert isinstance(algo, HyperoptConfig)
    assert algo.algorithm == "tpe"
    assert algo.n_trials == 20  # numRuns
    assert spec.concurrency == 4
    assert spec.metric == Metric("loss", "minimize")
    assert len(warnings_matching(spec, "matrix.tuner", "ignored")) == 1


def test_genD_random_and_early_stopping(load):
    spec = load("genD_quickstart_sched_early_stopping.yaml")
    assert spec.algorithm == RandomConfig(n_trials=20)
    assert spec.concurrency == 5
    assert spec.early_stopping.thresholds == (Threshold("accuracy", 0.9, "maximize"),)
    assert spec.early_stopping.failure is not None
    assert spec.early_stopping.failure.percent == 0.3
    assert warnings_matching(spec, "percent", "0.3")
    assert spec.run.constants == {"epochs": 5}  # v1 `params: {epochs: {value: 5}}`
    assert spec.space["conv_activation"].kind == "pvalues"


def test_genD_random_with_concurrency(load):
    spec = load("genD_quickstart_sched_random_conc.yaml")
    assert spec.algorithm == RandomConfig(n_trials=10)
    assert spec.concurrency == 2
    assert spec.seed is None


def test_genD_keras_random(load):
    spec = load("genD_examples_keras_mnist_random.yml")
    assert spec.algorithm == RandomConfig(n_trials=20)
    assert spec.concurrency == 10
    assert spec.space["hidden1_size"].values == tuple(range(10, 600, 50))
    assert spec.space["optimizer"].kind == "pvalues"  # pchoice


def test_genD_mapping(load):
    spec = load("genD_examples_keras_mnist_mapping.yml")
    algo = spec.algorithm
    assert isinstance(algo, MappingConfig)
    assert len(algo.values) == 4
    assert algo.values[0]["optimizer"] == "adam"
    assert algo.values[3]["hidden1_size"] == 600
    assert spec.concurrency == 2
    assert spec.space["conv1_size"].values == (32, 64, 128)


def test_genD_without_concurrency_has_no_bound(load):
    spec = load("genD_quickstart_automation_mapping.yml")
    assert spec.concurrency is None
    assert isinstance(spec.algorithm, MappingConfig)
    assert [row["learning_rate"] for row in spec.algorithm.values] == [0.001, 0.01]


def test_genD_has_no_kubernetes_warnings(load):
    for name in ("genD_quickstart_automation_bo.yml", "genD_quickstart_automation_mapping.yml"):
        assert load(name).warnings == ()


# ----------------------------------------------------------------- constants precedence


def test_constants_precedence_inputs_declarations_params():
    spec = load_spec(str(DATA / "constants_precedence.yml"))
    assert spec.run.constants == {"only_input": 1, "in_decl": 2, "in_all": 3, "lr": 0.5}
    values = dict(spec.run.constants)
    values.update({"lr": 0.01})  # a suggested parameter overrides everything
    assert render(spec.run.cmd, values) == "python train.py --a=1 --b=2 --c=3 --lr=0.01"
