"""Every generation of the polyaxonfile dialect (DIALECT.md) into one ``Spec``."""
from __future__ import annotations

import math
import os
from fractions import Fraction
from typing import Any, Dict, List, Optional, Tuple

from ..errors import SpecError
from ..space import Space, clean_number
from .model import (
    KEEP_CHECKPOINTS,
    MAXIMIZE,
    MINIMIZE,
    SAMPLERS,
    AlgorithmConfig,
    AshaConfig,
    BayesConfig,
    EarlyStopping,
    FailureStop,
    GaussianProcessConfig,
    GridConfig,
    HyperbandConfig,
    HyperoptConfig,
    IterativeConfig,
    MappingConfig,
    Metric,
    ModelSamplerConfig,
    PbtConfig,
    RandomConfig,
    ResourceConfig,
    RunTemplate,
    SamplerConfig,
    SlurmOptions,
    Spec,
    Threshold,
    TrialPolicy,
)
from .params import NAN_MESSAGE, mapping_space, parse_matrix
from .render import Command, TemplateError, command_placeholders, format_value, unknown_names
from .source import Section, Source, short, snake
from .yaml12 import load_yaml

# Sections that only make sense on Kubernetes: accepted, ignored, one warning each.
KUBERNETES_ONLY = {
    "build", "image", "node_selector", "tolerations", "affinity", "service_account_name", "image_pull_secrets",
    "plugins", "termination", "schedule", "queue", "cache", "hooks", "joins", "connections", "volumes", "init",
    "sidecars", "presets", "is_preset", "trigger", "conditions", "skip_on_upstream_skip", "dependencies",
    "persistence", "outputs", "replica_spec", "backend",
}
# Descriptive keys with nothing to do: accepted silently.
DESCRIPTIVE = {"version", "kind", "name", "project", "description", "tags", "framework", "logging", "owner",
               "path_ref", "url_ref", "hub_ref", "is_approved", "cost", "namespace"}
STUDY_KEYS = {"matrix", "settings", "hptuning", "declarations", "params", "inputs", "run", "environment", "slurm",
              "metric", "component"}

MAX_BRACKETS = 40  # eta^40 > R for any sensible study; more is a typo (eta: 1.001)
MAX_TRIALS = 1_000_000  # a plan is computed whole: keep it to what a cluster could run
MAX_ITERATIONS = 1_000  # runs of a Hyperband schedule in one study (every call walks them all)
V0_ALGORITHMS = ("grid_search", "random_search", "hyperband", "bo", "asha", "bohb", "pbt")
V1_KINDS = ("grid", "random", "mapping", "hyperband", "bayes", "hyperopt", "iterative", "tpe", "asha", "bohb", "pbt")
HYPERBAND_KEYS = {"eta", "resource", "metric", "resume", "sampler", "iterations"}
# BOHB's model (Falkner et al. 2018), with HpBandSter's defaults; `bohb:` and `sampler: kde`.
# (gen D's `topNPercent` reads as `top_npercent`: both spellings are accepted)
KDE_KEYS = {"top_n_percent", "top_npercent", "random_fraction", "num_samples", "bandwidth_factor", "min_bandwidth",
            "min_points_in_model"}
# hpc-tune's own surrogate (`sampler: model`, search/model_sampler.py): a subset of the KDE keys' names.
MODEL_KEYS = {"random_fraction", "min_points_in_model"}
ASHA_KEYS = {"resource", "metric", "min_resource", "max_resource", "eta", "min_early_stopping_rate", "mode",
             "resume", "sampler"}
PBT_KEYS = {"population_size", "resource", "perturbation_interval", "max_resource", "metric", "quantile_fraction",
            "resample_probability", "perturbation_factors", "keep_checkpoints"}
MAX_PBT_TRIALS = MAX_TRIALS
ACQUISITIONS = ("ucb", "ei", "poi")


def load_spec(path: str, base_dir: Optional[str] = None) -> Spec:
    """Read and validate a study file. Raises ``SpecError`` (file, line, key path).

    ``base_dir`` resolves relative references (``pathRef``); by default the file's
    own folder (a study's frozen copy passes the original file's folder)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise SpecError("no such file", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read: {exc}", path) from None
    data, lines = load_yaml(text, path)
    if data is None:
        raise SpecError("the file is empty (or only comments): a study file is a YAML mapping with a `matrix`, "
                        "`settings` or `hptuning` section", path, 1)
    return build_spec(data, Source(path, lines), base_dir=base_dir or os.path.dirname(os.path.abspath(path)))


def spec_from_dict(data: Dict[str, Any], name: str = "<dict>") -> Spec:
    """The same validation for a study given as a Python dict (no line numbers)."""
    return build_spec(data, Source(name, {}), base_dir=os.getcwd())


def build_spec(data: Any, source: Source, base_dir: str) -> Spec:
    root = Section(data, (), source)
    if not isinstance(data, dict):
        root.fail("a study file is a YAML mapping with a `matrix`, `settings` or `hptuning` section")
    warnings: List[str] = []

    def ignore(key: str, sec: Section) -> None:
        warnings.append(f"{sec.where()}: ignored: `{key}` only matters on Kubernetes")

    for key in data:
        name = str(key)
        sk = snake(name)
        if sk in STUDY_KEYS or sk in DESCRIPTIVE:
            continue
        if sk in KUBERNETES_ONLY:
            ignore(name, root.child(key))
        else:
            warnings.append(f"{root.where(key)}: unknown top-level key `{name}` ignored")

    matrix = root.child("matrix") if root.has("matrix") else None
    if matrix is not None and isinstance(matrix.data, dict) and "kind" in matrix.data:
        generation = "D"
        search = _v1_search(matrix, warnings)
    elif root.has("hptuning"):
        generation = "C"
        search = _v0_search(root.mapping("hptuning"), None, warnings, generation)
    elif root.has("settings") and (root.mapping("settings").has("matrix") or
                                   any(root.mapping("settings").has(a) for a in V0_ALGORITHMS)):
        generation = "B"
        search = _v0_search(root.mapping("settings"), matrix, warnings, generation)
    elif matrix is not None:
        generation = "A"
        search = _v0_search(root.mapping("settings"), matrix, warnings, generation)
    else:
        root.fail("no search found: expected `hptuning:` (with a `matrix`), `settings:` with a `matrix`, "
                  "a top-level `matrix:`, or a v1 `matrix: {kind: ...}`")

    constants = _constants(root, warnings)
    cmd, cmd_sec, component_constants, missing_cmd = _command(root, base_dir, warnings, generation)
    constants = {**component_constants, **constants}
    gpus = _gpus(root)
    slurm = _slurm(root.mapping("slurm"), gpus)

    space = search["space"]
    algorithm: AlgorithmConfig = search["algorithm"]
    known = dict(constants)
    known.update({name: None for name in space})
    if isinstance(algorithm, (HyperbandConfig, AshaConfig, PbtConfig)):
        known[algorithm.resource.name] = None
    if cmd is not None:
        try:
            missing = unknown_names(cmd, known)
        except TemplateError as exc:
            cmd_sec.fail(str(exc))
        if missing:
            cmd_sec.fail(
                f"uses {', '.join('{{ ' + n + ' }}' for n in missing)}, not defined by the matrix, "
                f"declarations, params or inputs; known names: {', '.join(sorted(map(str, known))) or '(none)'}")
        unused = [n for n in space if n not in command_placeholders(cmd)]
        if unused:
            warnings.append(f"{cmd_sec.where()}: the command does not use parameter(s) {', '.join(unused)}")

    metric = search.get("metric")
    thresholds = search["early_stopping"].thresholds
    if metric is None and thresholds:  # the metric the study stops on is the one it ranks by
        metric = Metric(thresholds[0].metric, thresholds[0].optimization)
    return Spec(
        path=source.file,
        generation=generation,
        space=space,
        algorithm=algorithm,
        run=RunTemplate(cmd=cmd, constants=constants, missing=missing_cmd),
        slurm=slurm,
        concurrency=search["concurrency"],
        seed=search["seed"],
        metric=metric,
        early_stopping=search["early_stopping"],
        name=data.get("name") if isinstance(data.get("name"), str) else None,
        warnings=tuple(warnings),
        raw=data,
        source=source,
    )


# ------------------------------------------------------------------- generations A-C


def _v0_search(sec: Section, top_matrix: Optional[Section], warnings: List[str], generation: str) -> Dict[str, Any]:
    sec.check_keys(
        {"concurrency", "concurrent_experiments", "seed", "search_method", "n_experiments", "early_stopping",
         "matrix", "metric", *V0_ALGORITHMS},
        ignored={"run_type", "logging"},
    )
    matrix = sec.child("matrix") if sec.has("matrix") else top_matrix
    if matrix is None or matrix.data is None:
        sec.fail("missing required section `matrix` (the parameters to search)")
    space = Space(parse_matrix(matrix, warnings))
    blocks = [a for a in V0_ALGORITHMS if sec.has(a)]
    if len(blocks) > 1:
        sec.fail(f"choose one search algorithm, found {', '.join(blocks)}", key=blocks[1])
    study_metric = _metric(sec.child("metric")) if sec.has("metric") else None

    concurrency_key = "concurrent_experiments" if sec.has("concurrent_experiments") else "concurrency"
    concurrency = sec.number(concurrency_key, 1, integer=True, minimum=1)
    seed = sec.number("seed", None, integer=True, minimum=0)

    algo_name = blocks[0] if blocks else None
    method = sec.string("search_method", None, choices=("sequential", "random", "grid")) \
        if sec.has("search_method") else None
    if method and algo_name:
        sec.fail(f"`search_method` and `{algo_name}` both choose an algorithm; keep one", key="search_method")
    if method:
        algo_name = "random_search" if method == "random" else "grid_search"
    if algo_name is None:
        algo_name = "grid_search"

    algorithm: AlgorithmConfig
    metric = study_metric
    if algo_name in ("grid_search", "random_search"):
        block = sec.mapping(algo_name)
        block.check_keys({"n_experiments", "seed"})
        n_sec, n_key = (block, "n_experiments") if block.has("n_experiments") else (sec, "n_experiments")
        seed = block.number("seed", seed, integer=True, minimum=0)
        if algo_name == "grid_search":
            _check_grid(space, matrix)
            algorithm = GridConfig(n_trials=_n_trials(n_sec, n_key, space, grid=True))
            _check_plan_size(space, algorithm.n_trials, matrix)
        else:
            algorithm = RandomConfig(n_trials=_random_n(n_sec, n_key, space, warnings))
    elif algo_name in ("hyperband", "bohb"):
        block = sec.mapping(algo_name)
        # the sampler's keys: `_sampler` refuses those of another sampler, where they stand
        block.check_keys({"max_iter", "seed"} | HYPERBAND_KEYS | KDE_KEYS)
        seed = block.number("seed", seed, integer=True, minimum=0)
        algorithm = _hyperband(block, space, "max_iter", bohb=algo_name == "bohb")
        metric = algorithm.metric
    elif algo_name == "asha":
        block = sec.mapping("asha")
        block.check_keys({"n_experiments", "seed"} | ASHA_KEYS | KDE_KEYS)
        seed = block.number("seed", seed, integer=True, minimum=0)
        algorithm = _asha(block, space, "n_experiments")
        metric = algorithm.metric
    elif algo_name == "pbt":
        block = sec.mapping("pbt")
        block.check_keys({"seed"} | PBT_KEYS)
        seed = block.number("seed", seed, integer=True, minimum=0)
        algorithm = _pbt(block, space)
        metric = algorithm.metric
        if not (sec.has("concurrency") or sec.has("concurrent_experiments")):
            concurrency = algorithm.population_size  # DIALECT: the members train at once
    else:
        block = sec.mapping("bo")
        block.check_keys({"n_iterations", "n_initial_trials", "metric", "utility_function", "seed"})
        seed = block.number("seed", seed, integer=True, minimum=0)
        algorithm = _bayes(block, "n_iterations", "n_initial_trials")
        metric = algorithm.metric
    early = _early_stopping(sec.child("early_stopping"), warnings) if sec.has("early_stopping") else EarlyStopping()
    return {"space": space, "algorithm": algorithm, "concurrency": concurrency, "seed": seed, "metric": metric,
            "early_stopping": early}


def _check_grid(space: Space, matrix: Section) -> None:
    for name, param in space.items():
        if not param.discrete or getattr(param, "probabilities", None) is not None:
            matrix.child(name).fail(
                f"grid search needs a finite list of values, but `{name}` is a {param.kind} "
                f"(use values, range, linspace, logspace or geomspace, or choose random search)")


def _check_plan_size(space: Space, n_trials: Optional[int], matrix: Section) -> None:
    """A grid is planned whole: its size is computed from the axes (never enumerated) and
    refused above MAX_TRIALS, unless `n_experiments` keeps fewer."""
    size = space.grid_size()
    if size <= MAX_TRIALS or (n_trials is not None and n_trials <= MAX_TRIALS):
        return
    axes = " x ".join(f"{name} {len(p.grid_values()):,}" for name, p in space.items())
    matrix.fail(f"the grid has {size:,} points ({axes}), more than hpc-tune plans ({MAX_TRIALS:,}): use fewer "
                f"values, `n_experiments` to keep the first N, or random search")


def _n_trials(sec: Section, key: str, space: Space, grid: bool) -> Optional[int]:
    """``n_experiments``: a count, or (gen A) a fraction < 1 of the space."""
    if not sec.has(key):
        return None
    value = sec.number(key, minimum=0, exclusive=True)
    if value < 1:
        size = space.grid_size() if grid else space.size()
        if size is None:
            sec.fail(f"a fraction ({value:g}) needs a finite space; give a number of trials", key=key)
        return max(1, int(value * size))
    if value != int(value):
        sec.fail(f"expected a whole number of trials (or a fraction < 1 of the space), got {short(value)}", key=key)
    if value > MAX_TRIALS:
        sec.fail(f"{int(value)} trials is more than hpc-tune plans ({MAX_TRIALS})", key=key)
    return int(value)


def _random_n(sec: Section, key: str, space: Space, warnings: List[str]) -> int:
    n = _n_trials(sec, key, space, grid=False)
    size = space.size()
    if n is None:
        if size is None:
            sec.fail("random search needs `n_experiments` (how many trials to run) when a parameter is a "
                     "distribution")
        if size > MAX_TRIALS:
            sec.fail(f"no `n_experiments` given, and the space has {size:,} parameter sets, more than hpc-tune "
                     f"plans ({MAX_TRIALS:,}): give `n_experiments` (how many trials to run)")
        warnings.append(f"{sec.where()}: no `n_experiments` given: random search runs all {size} parameter "
                        f"sets of the space, in random order")
        return size
    if size is not None and n > size:
        warnings.append(f"{sec.where(key)}: {n} trials asked but the space has only {size} distinct parameter "
                        f"sets; capped at {size}")
        return size
    return n


def _metric(sec: Section) -> Metric:
    if isinstance(sec.data, str):  # `metric: loss` shorthand
        return Metric(sec.data, MINIMIZE)
    if not isinstance(sec.data, dict):
        sec.fail("expected `{name: ..., optimization: minimize|maximize}`")
    sec.check_keys({"name", "optimization"})
    return Metric(sec.string("name"), sec.string("optimization", MINIMIZE, choices=(MINIMIZE, MAXIMIZE)))


def _hyperband(block: Section, space: Space, max_iter_key: str, bohb: bool = False) -> HyperbandConfig:
    name = "BOHB" if bohb else "Hyperband"
    max_iter = block.number(max_iter_key, minimum=1)
    eta = block.number("eta", 3, minimum=1, exclusive=True)
    if math.log(max_iter) / math.log(eta) > MAX_BRACKETS:
        block.fail(f"max_iter {max_iter:g} with eta {eta:g} makes more than {MAX_BRACKETS} brackets; "
                   f"use a larger eta or a smaller max_iter", key="eta")
    resource = _resource(block, space, name)
    if not block.has("metric"):
        block.fail(f"{name} needs `metric: {{name: ..., optimization: minimize|maximize}}`")
    if bohb and block.has("sampler"):
        block.fail("`bohb` always samples with its KDE model; remove `sampler` (or use `hyperband` with "
                   "`sampler: kde|model`)", key="sampler")
    iterations = block.number("iterations", 1, integer=True, minimum=1)
    if iterations > MAX_ITERATIONS:
        block.fail(f"{iterations} iterations is more than hpc-tune plans ({MAX_ITERATIONS}); "
                   f"use at most {MAX_ITERATIONS}", key="iterations")
    return HyperbandConfig(max_iter=max_iter, eta=eta, resource=resource, metric=_metric(block.child("metric")),
                           resume=block.boolean("resume", False),
                           sampler=_sampler(block, space, "kde" if bohb else None),
                           kind="bohb" if bohb else "hyperband", iterations=iterations)


def _resource(block: Section, space: Space, algorithm: str) -> ResourceConfig:
    rsec = block.mapping("resource", required=True)
    rsec.check_keys({"name", "type"})
    resource = ResourceConfig(rsec.string("name"), rsec.string("type", "float", choices=("int", "float")))
    if resource.name in space:
        rsec.fail(f"the resource `{resource.name}` is also a searched parameter; {algorithm} sets it", key="name")
    return resource


def _sampler(block: Section, space: Space, fixed: Optional[str], default: str = "random") -> SamplerConfig:
    """``sampler: random|kde|model`` and the KDE keys (BOHB's, HpBandSter's defaults).

    ``fixed``: the sampler the algorithm implies (``bohb`` is Hyperband with ``kde``);
    ``default``: the block's sampler when it names none (``asha``: ``model``, which beat
    random there and was level with or ahead of SMAC3; docs/samplers.md)."""
    kind = fixed or block.string("sampler", default, choices=SAMPLERS)
    kde_keys = [k for k in sorted(KDE_KEYS - (MODEL_KEYS if kind == "model" else set())) if block.has(k)]
    if kde_keys and kind != "kde":
        also = f"; `sampler: model` takes {' and '.join(sorted(MODEL_KEYS))}" if kind == "model" else ""
        block.fail(f"`{kde_keys[0]}` sets BOHB's KDE model: it needs `sampler: kde` (this block samples with "
                   f"`{kind}`{also})", key=kde_keys[0])
    if kind == "model":
        fraction = block.number("random_fraction", ModelSamplerConfig.random_fraction, minimum=0)
        if fraction > 1:
            block.fail(f"expected a probability in [0, 1], got {fraction!r}", key="random_fraction")
        return SamplerConfig(kind=kind, model=ModelSamplerConfig(
            random_fraction=float(fraction),
            min_points_in_model=block.number("min_points_in_model", None, integer=True, minimum=1)))
    top_key = "top_npercent" if block.has("top_npercent") else "top_n_percent"
    top = block.number(top_key, 15.0, minimum=0, exclusive=True)
    if top > 100:
        block.fail(f"expected a percentage in (0, 100], got {top!r}", key=top_key)
    fraction = block.number("random_fraction", 1.0 / 3.0, minimum=0)
    if fraction > 1:
        block.fail(f"expected a probability in [0, 1], got {fraction!r}", key="random_fraction")
    min_points = block.number("min_points_in_model", None, integer=True, minimum=1)
    return SamplerConfig(
        kind=kind,
        top_n_percent=float(top),
        random_fraction=float(fraction),
        num_samples=block.number("num_samples", 64, integer=True, minimum=1),
        bandwidth_factor=float(block.number("bandwidth_factor", 3.0, minimum=0, exclusive=True)),
        min_bandwidth=float(block.number("min_bandwidth", 1e-3, minimum=0, exclusive=True)),
        min_points_in_model=min_points,
    )


def _ladder_length(r: float, R: float, eta: float) -> int:
    """How many resources r·η^k (k = 0, 1, ...) are at most R, in exact arithmetic (as
    ``search.asha.rungs`` counts them: a float power of 3 can miss 243)."""
    exact = [Fraction(repr(float(x))) if isinstance(x, float) else Fraction(x) for x in (r, R, eta)]
    x, count = exact[0], 0
    while x <= exact[1]:
        count += 1
        x *= exact[2]
    return count


def _asha(block: Section, space: Space, n_key: str) -> AshaConfig:
    max_resource = block.number("max_resource", minimum=0, exclusive=True)
    min_resource = block.number("min_resource", 1, minimum=0, exclusive=True)
    if min_resource > max_resource:
        block.fail(f"min_resource ({min_resource:g}) must not exceed max_resource ({max_resource:g})",
                   key="min_resource")
    eta = block.number("eta", 3, minimum=1, exclusive=True)
    if math.log(max_resource / min_resource) / math.log(eta) > MAX_BRACKETS:
        block.fail(f"max_resource / min_resource = {max_resource / min_resource:g} with eta {eta:g} makes more "
                   f"than {MAX_BRACKETS} rungs; use a larger eta or a larger min_resource", key="eta")
    skip = block.number("min_early_stopping_rate", 0, integer=True, minimum=0)
    ladder = _ladder_length(min_resource, max_resource, eta)
    if skip >= ladder:
        block.fail(f"min_early_stopping_rate {skip} skips every rung: min_resource {min_resource:g} times eta "
                   f"{eta:g} to the power {skip} is beyond max_resource {max_resource:g}; expected at most "
                   f"{ladder - 1}", key="min_early_stopping_rate")
    resource = _resource(block, space, "ASHA")
    if not block.has("metric"):
        block.fail("ASHA needs `metric: {name: ..., optimization: minimize|maximize}`")
    if not block.has(n_key):
        block.fail(f"ASHA needs `{n_key}`: how many configurations start at the bottom rung, in all")
    n_trials = block.number(n_key, integer=True, minimum=1)
    if n_trials > MAX_TRIALS:
        block.fail(f"{n_trials} configurations is more than hpc-tune plans ({MAX_TRIALS})", key=n_key)
    mode = block.string("mode", "promotion", choices=("promotion", "stopping"))
    if mode == "stopping" and block.has("resume"):
        block.fail("`resume` is for promotion mode: in stopping mode each configuration is one trial that "
                   "runs to max_resource", key="resume")
    return AshaConfig(max_resource=max_resource, resource=resource, metric=_metric(block.child("metric")),
                      n_trials=n_trials, min_resource=min_resource, eta=eta, min_early_stopping_rate=skip,
                      mode=mode, resume=block.boolean("resume", True),
                      sampler=_sampler(block, space, None, default="model"))


def _pbt(block: Section, space: Space) -> PbtConfig:
    for key in ("population_size", "perturbation_interval", "max_resource"):
        if not block.has(key):
            block.fail(f"PBT needs `{key}`")
    population = block.number("population_size", integer=True, minimum=2)
    interval = block.number("perturbation_interval", minimum=0, exclusive=True)
    max_resource = block.number("max_resource", minimum=0, exclusive=True)
    if interval > max_resource:
        block.fail(f"perturbation_interval ({interval:g}) is longer than max_resource ({max_resource:g}): "
                   f"no member would ever be compared", key="perturbation_interval")
    if population * math.ceil(max_resource / interval) > MAX_PBT_TRIALS:
        block.fail(f"{population} members x {math.ceil(max_resource / interval)} intervals is more than hpc-tune "
                   f"plans ({MAX_PBT_TRIALS} trials); use a longer perturbation_interval",
                   key="perturbation_interval")
    resource = _resource(block, space, "PBT")
    if resource.type == "int" and (interval != int(interval) or max_resource != int(max_resource)):
        block.fail("an `int` resource needs a whole perturbation_interval and max_resource",
                   key="perturbation_interval" if interval != int(interval) else "max_resource")
    if not block.has("metric"):
        block.fail("PBT needs `metric: {name: ..., optimization: minimize|maximize}`")
    quantile = block.number("quantile_fraction", 0.25, minimum=0, exclusive=True)
    if quantile > 0.5:
        block.fail(f"expected a fraction in (0, 0.5] (the bottom fraction copies from the top one; they must not "
                   f"overlap), got {quantile!r}", key="quantile_fraction")
    resample = block.number("resample_probability", 0.25, minimum=0)
    if resample > 1:
        block.fail(f"expected a probability in [0, 1], got {resample!r}", key="resample_probability")
    fsec = block.child("perturbation_factors")
    factors: Tuple[float, ...] = (0.8, 1.2)
    if block.has("perturbation_factors"):
        if not isinstance(fsec.data, list) or not fsec.data:
            fsec.fail("expected a non-empty list of positive numbers, e.g. [0.8, 1.2]")
        for i, f in enumerate(fsec.data):
            if isinstance(f, bool) or not isinstance(f, (int, float)) or not (math.isfinite(f) and f > 0):
                fsec.child(i).fail(f"expected a positive number (a factor such as 0.8 or 1.2), got {f!r}")
        factors = tuple(float(f) for f in fsec.data)
    return PbtConfig(population_size=population, resource=resource, perturbation_interval=interval,
                     max_resource=max_resource, metric=_metric(block.child("metric")), quantile_fraction=quantile,
                     resample_probability=resample, perturbation_factors=factors,
                     keep_checkpoints=block.string("keep_checkpoints", "needed", choices=KEEP_CHECKPOINTS))


def _bayes(block: Section, n_iter_key: str, n_init_key: str) -> BayesConfig:
    if not block.has("metric"):
        block.fail("Bayesian optimisation needs `metric: {name: ..., optimization: minimize|maximize}`")
    metric = _metric(block.child("metric"))
    n_initial = block.number(n_init_key, minimum=1, integer=True)
    n_iter = block.number(n_iter_key, minimum=0, integer=True)
    usec = block.mapping("utility_function")
    usec.check_keys({"acquisition_function", "kappa", "eps", "gaussian_process", "n_warmup", "n_iter",
                     "num_warmup", "num_iterations"})
    gsec = usec.mapping("gaussian_process")
    gsec.check_keys({"kernel", "length_scale", "nu", "n_restarts_optimizer", "num_restarts_optimizer"})
    restarts_key = "num_restarts_optimizer" if gsec.has("num_restarts_optimizer") else "n_restarts_optimizer"
    gp = GaussianProcessConfig(
        kernel=gsec.string("kernel", "matern", choices=("matern", "rbf")),
        length_scale=gsec.number("length_scale", 1.0, minimum=0, exclusive=True),
        nu=gsec.number("nu", 2.5, minimum=0, exclusive=True),
        n_restarts_optimizer=gsec.number(restarts_key, 0, integer=True, minimum=0),
    )
    return BayesConfig(
        n_initial_trials=n_initial,
        n_iterations=n_iter,
        metric=metric,
        acquisition=usec.string("acquisition_function", "ucb", choices=ACQUISITIONS),
        kappa=usec.number("kappa", 2.576, minimum=0),
        eps=usec.number("eps", 0.0, minimum=0),
        gaussian_process=gp,
    )


def _early_stopping(sec: Section, warnings: List[str]) -> EarlyStopping:
    if sec.data is None:
        return EarlyStopping()
    if not isinstance(sec.data, list):
        sec.fail("expected a list, e.g. `- {metric: accuracy, value: 0.9, optimization: maximize}`")
    thresholds: List[Threshold] = []
    policies: List[TrialPolicy] = []
    failure: Optional[FailureStop] = None
    for i in range(len(sec.data)):
        item = sec.child(i)
        if not isinstance(item.data, dict):
            item.fail("expected a mapping such as `{metric: accuracy, value: 0.9, optimization: maximize}`")
        kind = item.string("kind", "metric_early_stopping",
                           choices=("metric_early_stopping", "failure_early_stopping"))
        if kind == "failure_early_stopping":
            item.check_keys({"kind", "percent", "evaluation_interval"})
            percent = item.number("percent", minimum=0, exclusive=True)
            if percent > 100:
                item.fail(f"expected a percentage in (0, 100], got {short(percent)}", key="percent")
            if percent < 1:
                warnings.append(f"{item.where('percent')}: `percent: {percent:g}` means {percent:g} % of finished "
                                f"trials (the unit is percent, 1-99); write {percent * 100:g} for {percent * 100:g} %")
            failure = FailureStop(float(percent))
            continue
        item.check_keys({"kind", "metric", "value", "optimization", "higher", "policy"})
        name = item.string("metric")
        if item.has("higher"):
            optimization = MAXIMIZE if item.boolean("higher") else MINIMIZE
        else:
            optimization = item.string("optimization", MAXIMIZE, choices=(MINIMIZE, MAXIMIZE))
        if item.has("policy") and item.get("policy") is not None:
            policies.append(_policy(item.child("policy"), Metric(name, optimization)))
            if item.has("value"):
                thresholds.append(Threshold(name, item.number("value"), optimization))
            continue
        thresholds.append(Threshold(name, item.number("value"), optimization))
    return EarlyStopping(tuple(thresholds), failure, tuple(policies))


def _policy(sec: Section, metric: Metric) -> TrialPolicy:
    if not isinstance(sec.data, dict):
        sec.fail("expected `{kind: median|truncation|diff, evaluation_interval: ..., ...}`")
    sec.check_keys({"kind", "evaluation_interval", "min_interval", "min_samples", "percent"})
    kind = sec.string("kind", choices=("median", "truncation", "diff"))
    percent = sec.number("percent", 0 if kind == "median" else None, minimum=0)
    if percent is None:
        sec.fail(f"a `{kind}` policy needs `percent`")
    if percent > 100:
        sec.fail(f"expected a percentage in [0, 100], got {short(percent)}", key="percent")
    return TrialPolicy(
        kind=kind,
        metric=metric,
        evaluation_interval=sec.number("evaluation_interval", 1, integer=True, minimum=1),
        min_interval=sec.number("min_interval", 1, integer=True, minimum=0),
        min_samples=sec.number("min_samples", 3, integer=True, minimum=1),
        percent=float(percent),
    )


# ---------------------------------------------------------------------- generation D


def _v1_search(matrix: Section, warnings: List[str]) -> Dict[str, Any]:
    kind = matrix.string("kind", choices=V1_KINDS)
    common = {"kind", "concurrency", "seed", "early_stopping", "params", "num_runs", "max_iterations", "metric",
              "tuner", "container"}
    allowed = {
        "grid": common,
        "random": common,
        "mapping": {"kind", "concurrency", "early_stopping", "values", "seed", "metric"},
        "hyperband": common | HYPERBAND_KEYS | KDE_KEYS,
        "bohb": common | HYPERBAND_KEYS | KDE_KEYS,
        "asha": common | ASHA_KEYS | KDE_KEYS,
        "pbt": common | PBT_KEYS,
        "bayes": common | {"num_initial_runs", "utility_function"},
        "hyperopt": common | {"algorithm"},
        "tpe": common,
        "iterative": common | {"function"},
    }[kind]
    matrix.check_keys(allowed)
    concurrency = matrix.number("concurrency", None, integer=True, minimum=1)
    seed = matrix.number("seed", None, integer=True, minimum=0)
    study_metric = _metric(matrix.child("metric")) if matrix.has("metric") else None
    if matrix.has("tuner") and kind != "iterative":
        warnings.append(f"{matrix.where('tuner')}: ignored: hpc-tune runs its own {kind} search, not a tuner "
                        f"container")

    algorithm: AlgorithmConfig
    if kind == "mapping":
        vsec = matrix.child("values")
        if not isinstance(vsec.data, list) or not vsec.data:
            matrix.fail("a mapping needs `values`: a non-empty list of parameter sets", key="values")
        for i, row in enumerate(vsec.data):
            if not isinstance(row, dict) or not row:
                vsec.child(i).fail("expected a mapping of parameter names to values")
            for k, v in row.items():
                if isinstance(v, (dict, list)):
                    vsec.child(i).fail(f"a value must be a number, a string or a boolean, got {short(v)}", key=k)
                if isinstance(v, float) and math.isnan(v):
                    vsec.child(i).fail(NAN_MESSAGE, key=k)
        space = Space(mapping_space(vsec.data))
        algorithm = MappingConfig(values=tuple({k: clean_number(v) for k, v in row.items()} for row in vsec.data))
    else:
        space = Space(parse_matrix(matrix.mapping("params", required=True), warnings))
        n_key = "num_runs" if matrix.has("num_runs") else "max_iterations"
        if kind == "grid":
            _check_grid(space, matrix.mapping("params"))
            algorithm = GridConfig(n_trials=_n_trials(matrix, n_key, space, grid=True))
            _check_plan_size(space, algorithm.n_trials, matrix.mapping("params"))
        elif kind == "random":
            algorithm = RandomConfig(n_trials=_random_n(matrix, n_key, space, warnings))
        elif kind in ("hyperband", "bohb"):
            algorithm = _hyperband(matrix, space, "max_iterations", bohb=kind == "bohb")
        elif kind == "asha":
            algorithm = _asha(matrix, space, "num_runs")
        elif kind == "pbt":
            algorithm = _pbt(matrix, space)
            if concurrency is None:
                concurrency = algorithm.population_size  # DIALECT: the members train at once
        elif kind == "bayes":
            algorithm = _bayes(matrix, "max_iterations", "num_initial_runs")
        elif kind in ("hyperopt", "tpe"):
            if not matrix.has("metric"):
                matrix.fail(f"{kind} needs `metric: {{name: ..., optimization: minimize|maximize}}`")
            if not matrix.has(n_key):
                matrix.fail(f"{kind} needs `numRuns` (how many trials to run)")
            algorithm = HyperoptConfig(
                n_trials=matrix.number(n_key, integer=True, minimum=1),
                metric=study_metric,  # type: ignore[arg-type]
                algorithm="tpe" if kind == "tpe" else matrix.string("algorithm", "tpe",
                                                                      choices=("tpe", "rand", "anneal")),
            )
        else:
            if not matrix.has("function"):
                matrix.fail("iterative needs `function: module:function` (hpc-tune calls a Python function with "
                            "the history; it does not run a tuner container)")
            function = matrix.string("function")
            if ":" not in function:
                matrix.fail(f"expected `module:function`, got {short(function)}", key="function")
            if not matrix.has(n_key):
                matrix.fail("iterative needs `numRuns` (how many trials to run)")
            algorithm = IterativeConfig(function=function, n_trials=matrix.number(n_key, integer=True, minimum=1),
                                        metric=study_metric)
    metric = getattr(algorithm, "metric", None) or study_metric
    early = _early_stopping(matrix.child("early_stopping"), warnings) \
        if matrix.has("early_stopping") else EarlyStopping()
    return {"space": space, "algorithm": algorithm, "concurrency": concurrency, "seed": seed, "metric": metric,
            "early_stopping": early}


# ------------------------------------------------------------ command, values, resources


def _constants(root: Section, warnings: List[str]) -> Dict[str, Any]:
    """Values for the template, lowest precedence first: inputs defaults,
    declarations, params."""
    out: Dict[str, Any] = {}
    out.update(_inputs(root.child("inputs")) if root.has("inputs") else {})
    if root.has("declarations"):
        out.update(_plain_mapping(root.mapping("declarations")))
    if root.has("params"):
        psec = root.mapping("params")
        for key, value in psec.data.items():
            if isinstance(value, dict):  # v1: {value: x} or {ref: ...}
                if "value" in value:
                    out[key] = value["value"]
                else:
                    warnings.append(f"{psec.where(key)}: only `value` params are used; "
                                    f"{sorted(map(str, value))} ignored")
            else:
                out[key] = value
    return out


def _inputs(sec: Section) -> Dict[str, Any]:
    if not isinstance(sec.data, list):
        sec.fail("expected a list of inputs, e.g. `- {name: batch_size, type: int, default: 128}`")
    out: Dict[str, Any] = {}
    for i, item in enumerate(sec.data):
        isec = sec.child(i)
        if not isinstance(item, dict) or "name" not in item:
            isec.fail("an input needs at least a `name`")
        for key in ("default", "value"):
            if key in item and item[key] is not None:
                out[str(item["name"])] = item[key]
    return out


def _plain_mapping(sec: Section) -> Dict[str, Any]:
    return {str(k): v for k, v in sec.data.items()}


def _command(root: Section, base_dir: str, warnings: List[str], generation: str,
             depth: int = 0) -> Tuple[Optional[Command], Section, Dict[str, Any], Optional[SpecError]]:
    """The command template: v0 ``run.cmd``, v1 ``run.container.command/args``, or the
    component a v1 operation points at with ``pathRef`` (read relative to the study file).
    Without one: why not, as a located error (the file still loads; submit refuses it)."""
    if root.has("run"):
        run = root.mapping("run")
        for key in ("image", "steps", "build_steps", "env_vars", "git", "install"):
            if run.has(key):
                warnings.append(f"{run.where(run.key_for(key))}: ignored: `{key}` only matters on Kubernetes")
        if run.has("cmd"):
            csec = run.child("cmd")
            cmd = csec.data
            if isinstance(cmd, list) and cmd and all(isinstance(c, str) for c in cmd):
                # Polyaxon v0 ran a list as its commands joined by `&&`; v1 reads a list as an argv.
                command = Command.commands(cmd) if generation in ("A", "B", "C") else Command.from_argv(cmd)
                return command, csec, {}, None
            if not isinstance(cmd, str) or not cmd.strip():
                csec.fail(f"expected the command as a string, e.g. `python train.py --lr={{{{ lr }}}}`, "
                          f"got {short(cmd)}")
            return Command.shell(cmd), csec, {}, None
        if run.has("container"):
            return _container_cmd(run.mapping("container")), run.child("container"), {}, None
        run.fail("missing `cmd`: the shell command each trial runs, with `{{ name }}` placeholders")
    if root.has("component"):
        comp = root.mapping("component")
        cmd, sec, _, missing = _command(comp, base_dir, warnings, generation, depth)
        return cmd, sec, _inputs(comp.child("inputs")) if comp.has("inputs") else {}, missing
    if root.has("path_ref"):
        key = root.key_for("path_ref")
        ref = root.get("path_ref")
        if not isinstance(ref, str) or not ref.strip():
            root.fail(f"expected the path of a component file, got {short(ref)}", key=key)
        path = ref if os.path.isabs(ref) else os.path.join(base_dir, ref)
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return None, root, {}, _located(root, key, f"cannot read the component {short(ref)} (looked for {path}): "
                                                        f"{why}")
        if depth >= 8:
            root.fail("pathRef chain deeper than 8 files (a file that refers to itself?)", key=key)
        data, lines = load_yaml(text, path)
        comp = Section(data, (), Source(path, lines))
        if not isinstance(data, dict):
            comp.fail("a component file is a YAML mapping with a `run` section")
        cmd, sec, _, missing = _command(comp, os.path.dirname(path), warnings, "D", depth + 1)
        return cmd, sec, _inputs(comp.child("inputs")) if comp.has("inputs") else {}, missing
    if root.has("url_ref"):
        return None, root, {}, _located(
            root, root.key_for("url_ref"), "hpc-tune does not fetch components from URLs: save the component "
            "next to the study file and point `pathRef` at it, or write `run: {cmd: ...}`")
    if root.has("hub_ref"):
        return None, root, {}, _located(
            root, root.key_for("hub_ref"), "hpc-tune has no component hub: write `run: {cmd: ...}` or point "
            "`pathRef` at a component file")
    return None, root, {}, _located(
        root, None, "no `run` section: hpc-tune needs the command each trial runs, e.g. "
        "`run: {cmd: python train.py --lr={{ lr }}}`")


def _located(sec: Section, key: Any, message: str) -> SpecError:
    path = sec.path + ((key,) if key is not None else ())
    line = sec.source.line(path) if key is not None else None
    return SpecError(message, sec.source.file, line or 1, sec.keypath(key) or None)


def _container_cmd(sec: Section) -> Command:
    """v1 ``container: {command: [...], args: [...]}``: an argv, as Kubernetes reads it."""
    argv: List[str] = []
    for key in ("command", "args"):
        if not sec.has(key):
            continue
        piece = sec.get(key)
        if isinstance(piece, str):
            if key == "command" and any(c.isspace() for c in piece.strip()):
                sec.fail("`command` is an argv (Kubernetes runs it without a shell): write a list such as "
                         "[python, train.py], or [sh, -c] with the shell line in `args`", key=key)
            piece = [piece]
        if not isinstance(piece, list):
            sec.fail(f"expected a list of strings, got {short(piece)}", key=key)
        for i, element in enumerate(piece):
            if isinstance(element, (dict, list)) or element is None:
                sec.child(key).fail(f"expected a string, got {short(element)}", key=i)
            argv.append(format_value(element))
    if not argv:
        sec.fail("a container needs `command` and/or `args`")
    return Command.from_argv(argv)


def _gpus(root: Section) -> int:
    """``environment.resources.gpu`` (v0) or v1 container GPU limits."""
    env = root.mapping("environment")
    resources = env.mapping("resources")
    gsec = resources.child("gpu")
    if isinstance(gsec.data, dict):
        return _gpu_count(gsec, "limits" if "limits" in gsec.data else "requests")
    if isinstance(gsec.data, (int, float)):
        return _gpu_count(resources, "gpu")
    container = root.mapping("run").mapping("container") if root.has("run") else None
    if container is not None and container.has("resources"):
        limits = container.mapping("resources").mapping("limits")
        for key in ("nvidia.com/gpu", "gpu"):
            if key in limits.data:
                return _gpu_count(limits, key)
    return 0


def _gpu_count(sec: Section, key: str) -> int:
    """A GPU count: a whole number >= 0; Kubernetes files may quote it (``"1"``)."""
    value = sec.data.get(key)
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.strip().isdecimal() and len(value.strip()) <= 9:
        return int(value)
    return sec.number(key, integer=True, minimum=0)


def _slurm(sec: Section, gpus: int) -> SlurmOptions:
    if not sec.data:
        return SlurmOptions(gpus=gpus)
    sec.check_keys({"partition", "time", "mem", "cpus", "cpus_per_task", "gpus", "account", "qos", "extra",
                    "sbatch", "max_retries"})
    extra_key = "sbatch" if sec.has("sbatch") else "extra"
    extra = sec.get(extra_key, [])
    if isinstance(extra, str):
        extra = [extra]
    if not isinstance(extra, list) or not all(isinstance(e, str) and e.startswith("-") for e in extra):
        sec.fail("expected a list of sbatch options such as `--constraint=a100`", key=extra_key)
    time = sec.get("time", None)
    if time is not None and not isinstance(time, (str, int)):
        sec.fail("expected a Slurm time such as `30` (minutes), `2:00:00` or `1-12:00:00`", key="time")
    mem = sec.get("mem", None)
    if mem is not None and not isinstance(mem, (str, int)):
        sec.fail("expected a memory size such as `4G` or `500M`", key="mem")
    cpus_key = "cpus_per_task" if sec.has("cpus_per_task") else "cpus"
    return SlurmOptions(
        partition=sec.string("partition", None),
        time=None if time is None else str(time),
        mem=None if mem is None else str(mem),
        cpus=sec.number(cpus_key, None, integer=True, minimum=1),
        gpus=sec.number("gpus", gpus, integer=True, minimum=0),
        account=sec.string("account", None),
        qos=sec.string("qos", None),
        extra=tuple(extra),
        max_retries=sec.number("max_retries", 3, integer=True, minimum=0),
    )
