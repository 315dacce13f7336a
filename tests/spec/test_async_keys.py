"""The keys of DIALECT.md's "Asynchronous multi-fidelity and population-based search":
`asha:`, `bohb:`, `pbt:` and `sampler:` in generations B/C (snake_case) and D
(camelCase, `matrix.kind`), their defaults, and located errors for bad values."""
import textwrap

import pytest

from hpc_tune.errors import SpecError
from hpc_tune.search import samplers
from hpc_tune.spec import load_spec
from hpc_tune.spec.model import AshaConfig, HyperbandConfig, ModelSamplerConfig, PbtConfig, SamplerConfig

RUN = "run:\n  cmd: python train.py --lr={{ lr }} --epochs={{ epochs }}\n"
METRIC = "metric: {name: loss, optimization: minimize}"
RESOURCE = "resource: {name: epochs, type: int}"


def D(text):
    return textwrap.dedent(text).lstrip("\n")


def with_run(text):
    text = D(text)
    return text if "run:" in text else text + RUN


def load(tmp_path, text):
    path = tmp_path / "study.yml"
    path.write_text(with_run(text))
    return load_spec(str(path))


def error(tmp_path, text):
    path = tmp_path / "study.yml"
    path.write_text(with_run(text))
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    return str(path), info.value


def located(err, path, line, keypath, *words):
    assert (err.file, err.line, err.keypath) == (path, line, keypath), str(err)
    for w in words:
        assert w in str(err), str(err)


@pytest.fixture
def kde(monkeypatch):
    """A stand-in registration of the KDE sampler (its module lives on another branch)."""
    monkeypatch.setitem(samplers.SAMPLERS, "kde", "hpc_tune.search.samplers:propose_random")


# ------------------------------------------------------------------------------ ASHA


def test_asha_gen_c_with_defaults(tmp_path):
    spec = load(tmp_path, f"""
        kind: group
        hptuning:
          concurrency: 4
          asha:
            max_resource: 27
            n_experiments: 30
            {RESOURCE}
            {METRIC}
          matrix:
            lr: {{uniform: [0, 1]}}
        """)
    assert spec.generation == "C"
    assert spec.algorithm == AshaConfig(max_resource=27, resource=spec.algorithm.resource, metric=spec.metric,
                                        n_trials=30, min_resource=1, eta=3, min_early_stopping_rate=0,
                                        mode="promotion", resume=True,
                                        sampler=SamplerConfig(kind="model", model=ModelSamplerConfig()))
    assert spec.algorithm.resource.name == "epochs" and spec.metric.name == "loss"


def test_asha_gen_b_every_key(tmp_path):
    spec = load(tmp_path, f"""
        kind: group
        settings:
          seed: 3
          asha:
            min_resource: 2
            max_resource: 50
            eta: 2
            min_early_stopping_rate: 1
            n_experiments: 10
            mode: stopping
            sampler: random
            {RESOURCE}
            {METRIC}
          matrix:
            lr: {{values: [1, 2]}}
        """)
    algo = spec.algorithm
    assert spec.generation == "B" and spec.seed == 3
    assert (algo.min_resource, algo.max_resource, algo.eta, algo.min_early_stopping_rate, algo.n_trials,
            algo.mode) == (2, 50, 2, 1, 10, "stopping")


def test_asha_gen_d_camel_case(tmp_path, kde):
    spec = load(tmp_path, """
        version: 1.1
        kind: operation
        matrix:
          kind: asha
          numRuns: 20
          minResource: 1
          maxResource: 81
          minEarlyStoppingRate: 0
          resume: false
          sampler: kde
          topNPercent: 20
          minPointsInModel: 4
          resource: {name: epochs, type: int}
          metric: {name: loss, optimization: maximize}
          params:
            lr: {kind: uniform, value: [0, 1]}
        """)
    algo = spec.algorithm
    assert isinstance(algo, AshaConfig) and spec.generation == "D"
    assert (algo.n_trials, algo.max_resource, algo.resume, algo.metric.optimization) == (20, 81, False, "maximize")
    assert algo.sampler == SamplerConfig(kind="kde", top_n_percent=20.0, min_points_in_model=4)


@pytest.mark.parametrize("block,line,key,words", [
    ("max_resource: 9\n    n_experiments: 5\n    eta: 1", 5, "hptuning.asha.eta", ["> 1"]),
    ("max_resource: 9\n    min_resource: 10\n    n_experiments: 5", 4, "hptuning.asha.min_resource",
     ["must not exceed max_resource"]),
    ("max_resource: 9\n    min_early_stopping_rate: 3\n    n_experiments: 5", 4,
     "hptuning.asha.min_early_stopping_rate", ["skips every rung", "at most 2"]),
    ("max_resource: 9", 2, "hptuning.asha", ["n_experiments", "bottom rung"]),
    ("max_resource: 9\n    n_experiments: 5\n    mode: halving", 5, "hptuning.asha.mode",
     ["promotion, stopping"]),
    ("max_resource: 9\n    n_experiments: 5\n    mode: stopping\n    resume: true", 6, "hptuning.asha.resume",
     ["promotion mode"]),
    ("max_resource: 9\n    n_experiments: 5\n    sampler: bayes", 5, "hptuning.asha.sampler",
     ["random, kde, model"]),
    ("max_resource: 9\n    n_experiments: 5\n    top_n_percent: 10", 5, "hptuning.asha.top_n_percent",
     ["needs `sampler: kde`"]),
    ("max_resource: 9\n    n_experiments: 5\n    max_resourse: 3", 5, "hptuning.asha.max_resourse",
     ["did you mean `max_resource`"]),
])
def test_asha_errors_are_located(tmp_path, block, line, key, words):
    text = "hptuning:\n  asha:\n    " + block + f"\n    {RESOURCE}\n    {METRIC}\n" + \
        "  matrix:\n    lr: {uniform: [0, 1]}\n" + RUN
    path, err = error(tmp_path, text)
    located(err, path, line, key, *words)


# ------------------------------------------------------------------------------ BOHB


def test_bohb_is_hyperband_with_the_kde_sampler_and_hpbandster_defaults(tmp_path, kde):
    spec = load(tmp_path, f"""
        hptuning:
          bohb:
            max_iter: 27
            eta: 3
            {RESOURCE}
            {METRIC}
          matrix:
            lr: {{uniform: [0, 1]}}
        """)
    algo = spec.algorithm
    assert isinstance(algo, HyperbandConfig) and algo.kind == "bohb"
    assert algo.sampler == SamplerConfig(kind="kde", top_n_percent=15.0, random_fraction=1 / 3, num_samples=64,
                                         bandwidth_factor=3.0, min_bandwidth=1e-3, min_points_in_model=None)


def test_bohb_gen_d_and_hyperband_sampler_key(tmp_path, kde):
    spec = load(tmp_path, """
        matrix:
          kind: bohb
          maxIterations: 9
          randomFraction: 0.5
          numSamples: 32
          bandwidthFactor: 2
          minBandwidth: 0.01
          resource: {name: epochs, type: int}
          metric: {name: loss, optimization: minimize}
          params:
            lr: {kind: uniform, value: [0, 1]}
        """)
    assert spec.algorithm.kind == "bohb"
    assert spec.algorithm.sampler == SamplerConfig(kind="kde", random_fraction=0.5, num_samples=32,
                                                   bandwidth_factor=2.0, min_bandwidth=0.01)
    spec = load(tmp_path, f"""
        hptuning:
          hyperband:
            max_iter: 9
            sampler: kde
            num_samples: 16
            {RESOURCE}
            {METRIC}
          matrix:
            lr: {{uniform: [0, 1]}}
        """)
    assert spec.algorithm.kind == "hyperband" and spec.algorithm.sampler.kind == "kde"
    assert spec.algorithm.sampler.num_samples == 16


@pytest.mark.parametrize("extra,line,key,words", [
    ("sampler: random", 3, "hptuning.bohb.sampler", ["always samples with its KDE model"]),
    ("top_n_percent: 150", 3, "hptuning.bohb.top_n_percent", ["(0, 100]"]),
    ("random_fraction: 2", 3, "hptuning.bohb.random_fraction", ["[0, 1]"]),
    ("num_samples: 0", 3, "hptuning.bohb.num_samples", [">= 1"]),
    ("min_bandwidth: 0", 3, "hptuning.bohb.min_bandwidth", ["> 0"]),
    ("min_points_in_model: 1.5", 3, "hptuning.bohb.min_points_in_model", ["whole number"]),
])
def test_bohb_errors_are_located(tmp_path, kde, extra, line, key, words):
    text = f"hptuning:\n  bohb:\n    {extra}\n    max_iter: 9\n    {RESOURCE}\n    {METRIC}\n" + \
        "  matrix:\n    lr: {uniform: [0, 1]}\n" + RUN
    path, err = error(tmp_path, text)
    located(err, path, line, key, *words)


def test_iterations_of_hyperband_and_bohb(tmp_path, kde):
    for algo in ("hyperband", "bohb"):
        spec = load(tmp_path, f"""
            hptuning:
              {algo}:
                max_iter: 9
                iterations: 4
                {RESOURCE}
                {METRIC}
              matrix:
                lr: {{uniform: [0, 1]}}
            """)
        assert spec.algorithm.iterations == 4
    spec = load(tmp_path, """
        matrix:
          kind: bohb
          maxIterations: 9
          iterations: 2
          resource: {name: epochs, type: int}
          metric: {name: loss, optimization: minimize}
          params:
            lr: {kind: uniform, value: [0, 1]}
        """)
    assert spec.algorithm.iterations == 2
    assert load(tmp_path, f"""
        hptuning:
          hyperband: {{max_iter: 9, {RESOURCE}, {METRIC}}}
          matrix:
            lr: {{uniform: [0, 1]}}
        """).algorithm.iterations == 1


@pytest.mark.parametrize("value,words", [("0", [">= 1"]), ("2.5", ["whole number"]), ("many", ["whole number"]),
                                         ("5000", ["more than hpc-tune plans (1000)"])])
def test_iterations_errors_are_located(tmp_path, value, words):
    text = f"hptuning:\n  hyperband:\n    iterations: {value}\n    max_iter: 9\n    {RESOURCE}\n    {METRIC}\n" + \
        "  matrix:\n    lr: {uniform: [0, 1]}\n" + RUN
    path, err = error(tmp_path, text)
    located(err, path, 3, "hptuning.hyperband.iterations", *words)


def test_hyperband_kde_keys_need_sampler_kde(tmp_path):
    path, err = error(tmp_path, f"""
        hptuning:
          hyperband:
            max_iter: 9
            num_samples: 16
            {RESOURCE}
            {METRIC}
          matrix:
            lr: {{uniform: [0, 1]}}
        """)
    located(err, path, 4, "hptuning.hyperband.num_samples", "needs `sampler: kde`")


# ------------------------------------------------------------------------------- PBT


def test_pbt_gen_c_defaults_and_concurrency_from_the_population(tmp_path):
    spec = load(tmp_path, f"""
        kind: group
        hptuning:
          pbt:
            population_size: 6
            perturbation_interval: 2
            max_resource: 10
            {RESOURCE}
            {METRIC}
          matrix:
            lr: {{uniform: [0, 1]}}
        """)
    algo = spec.algorithm
    assert isinstance(algo, PbtConfig)
    assert (algo.population_size, algo.perturbation_interval, algo.max_resource, algo.quantile_fraction,
            algo.resample_probability, algo.perturbation_factors, algo.keep_checkpoints) == \
        (6, 2, 10, 0.25, 0.25, (0.8, 1.2), "needed")
    assert spec.concurrency == 6  # the population trains at once


def test_pbt_explicit_concurrency_wins_and_gen_d_keys(tmp_path):
    spec = load(tmp_path, """
        matrix:
          kind: pbt
          concurrency: 2
          populationSize: 4
          perturbationInterval: 1
          maxResource: 3
          quantileFraction: 0.5
          resampleProbability: 0
          perturbationFactors: [0.5, 2]
          keepCheckpoints: all
          resource: {name: epochs, type: int}
          metric: {name: loss, optimization: minimize}
          params:
            lr: {kind: uniform, value: [0, 1]}
        """)
    algo = spec.algorithm
    assert spec.concurrency == 2 and algo.keep_checkpoints == "all"
    assert (algo.quantile_fraction, algo.resample_probability, algo.perturbation_factors) == (0.5, 0, (0.5, 2.0))
    spec = load(tmp_path, """
        matrix:
          kind: pbt
          populationSize: 4
          perturbationInterval: 1
          maxResource: 3
          resource: {name: epochs, type: int}
          metric: {name: loss, optimization: minimize}
          params:
            lr: {kind: uniform, value: [0, 1]}
        """)
    assert spec.concurrency == 4


@pytest.mark.parametrize("block,line,key,words", [
    ("perturbation_interval: 2\n    max_resource: 10", 2, "hptuning.pbt", ["population_size"]),
    ("population_size: 1\n    perturbation_interval: 2\n    max_resource: 10", 3, "hptuning.pbt.population_size",
     [">= 2"]),
    ("population_size: 4\n    perturbation_interval: 20\n    max_resource: 10", 4,
     "hptuning.pbt.perturbation_interval", ["longer than max_resource"]),
    ("population_size: 4\n    perturbation_interval: 2.5\n    max_resource: 10", 4,
     "hptuning.pbt.perturbation_interval", ["`int` resource needs a whole"]),
    ("population_size: 4\n    perturbation_interval: 2\n    max_resource: 10\n    quantile_fraction: 0.7", 6,
     "hptuning.pbt.quantile_fraction", ["(0, 0.5]"]),
    ("population_size: 4\n    perturbation_interval: 2\n    max_resource: 10\n    resample_probability: 1.5", 6,
     "hptuning.pbt.resample_probability", ["[0, 1]"]),
    ("population_size: 4\n    perturbation_interval: 2\n    max_resource: 10\n    perturbation_factors: [0.8, -1]",
     6, "hptuning.pbt.perturbation_factors[1]", ["positive number"]),
    ("population_size: 4\n    perturbation_interval: 2\n    max_resource: 10\n    perturbation_factors: 1.2", 6,
     "hptuning.pbt.perturbation_factors", ["non-empty list"]),
    ("population_size: 4\n    perturbation_interval: 2\n    max_resource: 10\n    keep_checkpoints: some", 6,
     "hptuning.pbt.keep_checkpoints", ["needed, all"]),
    ("population_size: 4\n    perturbation_interval: 2\n    max_resource: 10\n    eta: 3", 6, "hptuning.pbt.eta",
     ["unknown key `eta`"]),
])
def test_pbt_errors_are_located(tmp_path, block, line, key, words):
    text = "hptuning:\n  pbt:\n    " + block + f"\n    {RESOURCE}\n    {METRIC}\n" + \
        "  matrix:\n    lr: {uniform: [0, 1]}\n" + RUN
    path, err = error(tmp_path, text)
    located(err, path, line, key, *words)


def test_the_resource_is_a_template_value_and_not_a_parameter(tmp_path):
    path, err = error(tmp_path, f"""
        hptuning:
          pbt:
            population_size: 4
            perturbation_interval: 2
            max_resource: 10
            resource: {{name: lr, type: int}}
            {METRIC}
          matrix:
            lr: {{uniform: [0, 1]}}
        """)
    located(err, path, 6, "hptuning.pbt.resource.name", "PBT sets it")
