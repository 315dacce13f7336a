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


@dataclass(frozen=True)
class HyperbandConfig:
    max_iter: float  # R
    eta: float
    resource: ResourceConfig
    metric: Metric
    resume: bool = False
    kind: str = "hyperband"


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
    GridConfig, RandomConfig, MappingConfig, HyperbandConfig, BayesConfig, HyperoptConfig, IterativeConfig
]


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
