"""The typed, frozen form of a study file, whatever its dialect generation."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple, Union

from ..space import Space

MINIMIZE = "minimize"
MAXIMIZE = "maximize"


@dataclass(frozen=True)
class Metric:
    name: str
    optimization: str = MINIMIZE  # "minimize" | "maximize"

    @property
    def maximize(self) -> bool:
        return self.optimization == MAXIMIZE


@dataclass(frozen=True)
class GridConfig:
    n_trials: Optional[int] = None  # keep the first N of the product
    kind: str = "grid"


@dataclass(frozen=True)
class RandomConfig:
    n_trials: int = 0
    kind: str = "random"


@dataclass(frozen=True)
class MappingConfig:
    values: Tuple[Dict[str, Any], ...] = ()
    kind: str = "mapping"


@dataclass(frozen=True)
class ResourceConfig:
    name: str
    type: str = "float"  # "int" | "float"


SAMPLERS = ("random", "kde", "model")


@dataclass(frozen=True)
class ModelSamplerConfig:
    """The keys of ``sampler: model`` (``hpc_tune.search.model_sampler``; docs/samplers.md).

    ``random_fraction``: probability that a new configuration is a random draw instead
    of the model's; ``min_points_in_model``: finite results a budget needs before the
    model proposes at it (None: the number of parameters + 1)."""

    random_fraction: float = 1.0 / 3.0
    min_points_in_model: Optional[int] = None



@dataclass(frozen=True)
class SamplerConfig:
    """How a multi-fidelity searcher draws new bottom-rung configurations
    (``hpc_tune.search.samplers.propose``).

    ``random``: from the matrix, as random search would. ``kde``: BOHB's model
    (Falkner et al. 2018) with HpBandSter's defaults, the fields below.
    ``model``: hpc-tune's own surrogate; its settings live in ``model``
    (``ModelSamplerConfig``), None for its defaults; the KDE fields do not apply to it.
    """

    kind: str = "random"  # one of SAMPLERS
    top_n_percent: float = 15.0
    random_fraction: float = 1.0 / 3.0
    num_samples: int = 64
    bandwidth_factor: float = 3.0
    min_bandwidth: float = 1e-3
    min_points_in_model: Optional[int] = None  # None: number of parameters + 1
    model: Optional[ModelSamplerConfig] = None  # settings of `sampler: model`; None: its defaults


@dataclass(frozen=True)
class HyperbandConfig:
    max_iter: float  # R
    eta: float
    resource: ResourceConfig
    metric: Metric
    resume: bool = False
    sampler: SamplerConfig = SamplerConfig()
    kind: str = "hyperband"  # "bohb" when written as `bohb:` (Hyperband with the KDE sampler)
    iterations: int = 1  # runs of the whole bracket schedule; the sampler learns across them


@dataclass(frozen=True)
class AshaConfig:
    """Asynchronous successive halving (Li et al., MLSys 2020, Algorithm 2).

    Rung k trains to ``min_resource * eta**(min_early_stopping_rate + k)``, up to
    ``max_resource`` (one last rung at R when R is not on the ladder)."""

    max_resource: float  # R
    resource: ResourceConfig
    metric: Metric
    n_trials: int  # `n_experiments`: configurations started at the bottom rung, in all
    min_resource: float = 1  # r
    eta: float = 3
    min_early_stopping_rate: int = 0  # s
    mode: str = "promotion"  # "promotion" | "stopping"
    resume: bool = True
    sampler: SamplerConfig = SamplerConfig()  # a study file's `asha` block defaults to `model` (spec.loader)
    kind: str = "asha"


KEEP_CHECKPOINTS = ("needed", "all")


@dataclass(frozen=True)
class PbtConfig:
    """Population Based Training (Jaderberg et al. 2017), asynchronous."""

    population_size: int
    resource: ResourceConfig
    perturbation_interval: float
    max_resource: float
    metric: Metric
    quantile_fraction: float = 0.25
    resample_probability: float = 0.25
    perturbation_factors: Tuple[float, ...] = (0.8, 1.2)
    keep_checkpoints: str = "needed"  # "needed": delete what no trial can copy any more; "all"
    kind: str = "pbt"


@dataclass(frozen=True)
class GaussianProcessConfig:
    kernel: str = "matern"  # "matern" | "rbf"
    length_scale: float = 1.0
    nu: float = 2.5
    n_restarts_optimizer: int = 0


@dataclass(frozen=True)
class BayesConfig:
    n_initial_trials: int
    n_iterations: int
    metric: Metric
    acquisition: str = "ucb"  # "ucb" | "ei" | "poi"
    kappa: float = 2.576
    eps: float = 0.0
    gaussian_process: GaussianProcessConfig = GaussianProcessConfig()
    kind: str = "bayes"


@dataclass(frozen=True)
class HyperoptConfig:
    n_trials: int
    metric: Metric
    algorithm: str = "tpe"  # "tpe" | "rand" | "anneal"
    kind: str = "hyperopt"


@dataclass(frozen=True)
class IterativeConfig:
    """A user function ``module:function`` that receives the history and returns
    suggestions; see ``hpc_tune.search.iterative``."""

    function: str
    n_trials: int
    metric: Optional[Metric] = None
    kind: str = "iterative"


AlgorithmConfig = Union[
    GridConfig, RandomConfig, MappingConfig, HyperbandConfig, BayesConfig, HyperoptConfig, IterativeConfig,
    AshaConfig, PbtConfig,
]
# Algorithms whose trials are told a resource (the total to reach): its name is a template value.
MultiFidelityConfig = Union[HyperbandConfig, AshaConfig, PbtConfig]


@dataclass(frozen=True)
class Threshold:
    """Stop the whole study once any trial's last value of ``metric`` reaches ``value``."""

    metric: str
    value: float
    optimization: str = MAXIMIZE

    def reached(self, x: float) -> bool:
        return x >= self.value if self.optimization == MAXIMIZE else x <= self.value


@dataclass(frozen=True)
class FailureStop:
    """Stop the study when failed trials reach ``percent`` % of finished ones."""

    percent: float


@dataclass(frozen=True)
class TrialPolicy:
    """A per-trial stopping rule evaluated on intermediate reports.

    kind ``median``: Vizier's median stopping rule; ``truncation``: stop the worst
    ``percent`` % at each evaluation step; ``diff``: stop when the trial is worse than
    the best by more than ``percent`` % at the same step.
    """

    kind: str
    metric: Metric
    evaluation_interval: int = 1
    min_interval: int = 1  # steps a trial runs before it can be stopped
    min_samples: int = 3  # other trials with a value at that step before the rule applies
    percent: float = 0.0


@dataclass(frozen=True)
class EarlyStopping:
    thresholds: Tuple[Threshold, ...] = ()
    failure: Optional[FailureStop] = None
    policies: Tuple[TrialPolicy, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.thresholds or self.failure or self.policies)


@dataclass(frozen=True)
class SlurmOptions:
    """Resources of every trial job (and defaults for the controller job)."""

    partition: Optional[str] = None
    time: Optional[str] = None  # Slurm's format: "MM", "HH:MM:SS", "D-HH:MM"
    mem: Optional[str] = None  # "4G", "500M"
    cpus: Optional[int] = None
    gpus: int = 0
    account: Optional[str] = None
    qos: Optional[str] = None
    extra: Tuple[str, ...] = ()  # extra "#SBATCH" options, e.g. "--constraint=a100"
    max_retries: int = 3  # resubmissions after TIMEOUT / NODE_FAIL (preemption is free)


@dataclass(frozen=True)
class RunTemplate:
    """The ``run.cmd`` template and the constants that fill it."""

    cmd: Optional[str]  # a render.Command: its reading (shell line, argv, v0 commands) goes with it
    constants: Dict[str, Any] = field(default_factory=dict)  # inputs defaults < declarations < params
    # Without a command: why not, located (no `run`, a urlRef, a pathRef that cannot be read).
    # The file still loads (every public file must); `validate`, `plan` and `submit` refuse it.
    missing: Optional[Exception] = field(default=None, compare=False)


@dataclass(frozen=True)
class Spec:
    path: str
    generation: str  # "A" | "B" | "C" | "D"
    space: Space
    algorithm: AlgorithmConfig
    run: RunTemplate
    slurm: SlurmOptions = SlurmOptions()
    concurrency: Optional[int] = None  # None: no bound of its own
    seed: Optional[int] = None
    metric: Optional[Metric] = None  # the objective: the algorithm's, else the study's
    early_stopping: EarlyStopping = EarlyStopping()
    name: Optional[str] = None
    warnings: Tuple[str, ...] = ()
    raw: Dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    source: Optional[Any] = field(default=None, compare=False, repr=False)  # spec.source.Source: key lines
