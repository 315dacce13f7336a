"""Hyperband (Li et al., JMLR 2018), as DIALECT.md pins it down.

With R = ``max_iter`` and η = ``eta``:

* s_max is the largest s with η^s ≤ R, found by exact rational arithmetic (a float
  logarithm gives 4 instead of 5 for R=243, η=3);
* brackets run in the order s = s_max, ..., 0; bracket s starts
  n = ceil((s_max+1)·η^s/(s+1)) fresh random configurations at r = R·η^-s;
* rung i (i = 0..s) holds n_i = floor(n·η^-i) configurations at r_i = R·η^(i-s),
  never beyond R; the best n_{i+1} of *that rung* go on to rung i+1.

For an integer η, n_{i+1} = floor(n_i/η), the paper's ``top_k`` count, exactly. For a
non-integer η the paper's floor(n_i/η) can fall one short of n_{i+1}, and can even
leave the last rung empty (R=10, η=2.5: 7, 2, then floor(2/2.5) = 0, so the bracket
never trains anything at R); hpc-tune keeps n_{i+1} so that every bracket has its
s+1 rungs and ends at R, as the rung formula says.

The searcher is a pure function of the history. Every trial it creates carries
``meta = {"bracket": s, "rung": i, "config": j, "parent": trial id or None}`` (plus
``"resume_from"`` for promotions when ``resume`` is on, and ``"iteration": k`` when the
study has ``iterations`` > 1), and the state of each bracket is a function of those
tags alone, so a restarted controller replaying the same journal gets the same next
step. That state is kept between calls (``_Reading``, memo.py: a pure cache) and only
the brackets of new or changed trials are walked again.

Iterations (``iterations: K``, hpc-tune's key; the paper's and HpBandSter's outer loop):
the brackets run K times, iteration after iteration, in one study. Each iteration is
the same schedule; its fresh configurations come from streams of its own (iteration 0's
are those of a one-iteration study), and a model sampler learns from every trial of the
study, earlier iterations included. That is the point of iterations: a run of several
Hyperband iterations as separate studies starts each one's model from nothing, which
left BOHB and the model sampler well behind HpBandSter and SMAC3 at 100 full budgets
(benchmarks/README.md).

Scheduling: brackets in start order; inside a bracket first the rung-0
configurations not created yet, then the promotions of every rung whose trials have
all finished. A bracket waiting for a straggler does not block the next one, so free
slots are used (DIALECT.md: "rungs of different brackets may run at the same time").
When fewer slots are free than trials can be created, this order decides who waits:
an earlier bracket's promotions go before a later bracket's fresh configurations, the
wide brackets with short trials start first and bracket 0 (R for every trial) last.
Critical-path orders (longest remaining chain first, as in HLFET/LPT list
scheduling, with or without a weight for the expected straggler of a wide rung) were
measured with ``benchmarks/hyperband_stragglers.py`` and not adopted. They run the
same trials and shorten the makespan by up to 5 % with lognormal trial times at
4-16 slots, but lengthen it by up to 6 % with equal trial times at 16-64 slots, and
with Pareto times they win or lose depending on the seed: which bracket ends up
critical depends on durations the searcher never sees (benchmarks/README.md,
ordering study).
With few slots the start order also makes bracket s_max's winner, the most selected
configuration, usually the first trial to end at R, where longest-chain-first would
put bracket 0's unselected configurations.

Sampler (``sampler:``; ``bohb:`` is ``sampler: kde``): with ``random`` (the default) the
fresh configurations of bracket s are drawn as described below, from ``sub_rng(seed, s)``,
so plans of existing studies never change. With any other sampler each fresh
configuration j of bracket s comes from ``samplers.propose`` with ``sub_rng(seed, s, j)``
and the history as it is when the configuration is created (the journal keeps it).

Duplicates: the fresh configurations of a bracket are drawn without repeats, with
at most ``MAX_DRAWS_PER_CONFIG`` draws per configuration. When the space has fewer
distinct points than the bracket needs (or the draws keep hitting the same points),
a repeat is accepted rather than looping forever or shrinking the bracket (which would
break the schedule that ``brackets()`` announces); ``SearchResult.notes`` says so.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union

import numpy as np

from ..space import Space, clean_number, params_key
from ..spec.model import HyperbandConfig
from . import memo, samplers
from .base import History, SearchResult, Suggestion, TrialRecord, TrialState, minimizing, sub_rng

Resource = Union[int, float]
RungKey = Tuple[int, int]  # (bracket s, rung i)
TrialKey = Tuple[int, int, int, int]  # (iteration k, bracket s, rung i, configuration j)

# Iteration k > 0 draws from streams of their own, marked by this first path element;
# iteration 0 keeps the streams of a one-iteration study, so its plans never change.
_ITERATION_STREAM = 2**31 - 1

# Draws spent looking for a configuration not yet in the bracket before a repeat is
# accepted: bounded so that a tiny or heavily weighted space can never hang the study.
MAX_DRAWS_PER_CONFIG = samplers.MAX_DRAWS_PER_CONFIG


# ------------------------------------------------------------------------ schedule


@dataclass(frozen=True)
class Rung:
    """``n`` configurations trained with ``resource`` each."""

    n: int
    resource: Resource

    def to_dict(self) -> Dict[str, Any]:
        return {"n": self.n, "resource": self.resource}


@dataclass(frozen=True)
class Bracket:
    """One bracket: its ``s`` and its rungs, from the smallest resource to R.

    ``rungs[i + 1].n`` is the number of configurations promoted from rung i.
    """

    s: int
    rungs: Tuple[Rung, ...]

    @property
    def n_configs(self) -> int:
        """Fresh configurations the bracket starts with."""
        return self.rungs[0].n if self.rungs else 0

    @property
    def n_trials(self) -> int:
        """Trials the bracket runs when no trial fails."""
        return sum(r.n for r in self.rungs)

    def to_dict(self) -> Dict[str, Any]:
        """The shape ``hpc-tune plan --json`` prints."""
        return {"bracket": self.s, "rungs": [r.to_dict() for r in self.rungs]}


def _exact(x: Any, name: str) -> Fraction:
    """A number as an exact fraction, read the way it was written.

    Floats go through their shortest decimal form, so ``1.1`` is 11/10 and not its
    binary neighbour: then 1.1^2 ≤ 1.21 holds as the user meant it.
    """
    if isinstance(x, bool) or not isinstance(x, (int, float, Fraction, np.integer, np.floating)):
        raise TypeError(f"hyperband {name} must be a number, got {x!r}")
    if isinstance(x, (int, np.integer)):
        return Fraction(int(x))
    if isinstance(x, Fraction):
        return x
    f = float(x)
    if not math.isfinite(f):
        raise ValueError(f"hyperband {name} must be finite, got {x!r}")
    return Fraction(repr(f))


def _checked(max_iter: Any, eta: Any) -> Tuple[Fraction, Fraction]:
    R, e = _exact(max_iter, "max_iter"), _exact(eta, "eta")
    if e <= 1:
        raise ValueError(f"hyperband eta must be greater than 1, got {eta!r}")
    if R < 1:
        raise ValueError(f"hyperband max_iter must be at least 1, got {max_iter!r}")
    return R, e


def s_max(max_iter: Any, eta: Any) -> int:
    """The largest integer s with eta**s <= max_iter, computed exactly."""
    R, e = _checked(max_iter, eta)
    s, next_power = 0, e
    while next_power <= R:
        s += 1
        next_power *= e
    return s


def _resource(r: Fraction, resource_type: str, R: Fraction) -> Resource:
    if resource_type == "int":
        # Round half up (floor(r + 1/2)), never truncate: R/3 * 3 must stay R.
        # At least 1, and never above R (only possible when R itself is not whole).
        return max(1, min(math.floor(r + Fraction(1, 2)), math.floor(R)))
    if resource_type == "float":
        # Twelve significant digits could round just above R (10000.35546875).
        return min(clean_number(float(r)), float(R))
    raise ValueError(f"hyperband resource type must be 'int' or 'float', got {resource_type!r}")


def brackets(config: HyperbandConfig) -> List[Bracket]:
    """One iteration of the schedule, brackets in the order they start (s = s_max first)."""
    R, eta = _checked(config.max_iter, config.eta)
    top = s_max(R, eta)
    out: List[Bracket] = []
    for s in range(top, -1, -1):
        n = math.ceil(Fraction(top + 1) * eta**s / (s + 1))
        rungs = tuple(
            Rung(math.floor(n / eta**i), _resource(R * eta ** (i - s), config.resource.type, R))
            for i in range(s + 1)
        )
        out.append(Bracket(s, rungs))
    return out


def schedule(config: HyperbandConfig) -> List[Tuple[int, Bracket]]:
    """The whole study: (iteration k, bracket) for ``config.iterations`` runs of the
    brackets, in start order."""
    one = brackets(config)
    return [(k, b) for k in range(config.iterations) for b in one]


def n_trials(config: HyperbandConfig) -> int:
    """Trials of the study when no trial fails, every iteration counted."""
    return sum(b.n_trials for _, b in schedule(config))


def planned_resource(config: HyperbandConfig) -> float:
    """The resource (epochs...) all those trials get together."""
    return float(sum(r.n * r.resource for _, b in schedule(config) for r in b.rungs))


def _rng(seed: int, k: int, *path: int) -> np.random.Generator:
    return sub_rng(seed, *path) if k == 0 else sub_rng(seed, _ITERATION_STREAM, k, *path)


# ------------------------------------------------------------------------- ranking


def _has_value(trial: TrialRecord) -> bool:
    value = trial.value
    return (
        trial.state in (TrialState.COMPLETED, TrialState.STOPPED)
        and isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def ranked(trials: Iterable[TrialRecord], optimization: str) -> List[TrialRecord]:
    """The trials that can be promoted, best first.

    Only finished trials with a finite value count (a STOPPED trial counts with its
    last value); failed, cancelled and valueless trials rank below all of them and
    are left out. Ties go to the trial created first.
    """
    valid = [t for t in trials if _has_value(t)]
    return sorted(valid, key=lambda t: (minimizing(float(t.value), optimization), t.trial_id))  # type: ignore[arg-type]


# ------------------------------------------------------------ state from the history


def _meta_int(meta: Mapping[str, Any], key: str) -> Optional[int]:
    v = meta.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        return None
    return v


def _key_of(meta: Optional[Mapping[str, Any]], shape: Mapping[Tuple[int, int], Tuple[int, int]]) -> Optional[TrialKey]:
    """A trial's (iteration, bracket, rung, config) by its tags, None when it has no such
    tags or they are outside the schedule (``shape``: (k, s) -> (rungs, configurations)):
    it is someone else's trial. A trial without an ``iteration`` tag is of iteration 0
    (as every trial of a one-iteration study, and of studies written before iterations
    existed)."""
    meta = meta or {}
    k = _meta_int(meta, "iteration") if "iteration" in meta else 0
    s, i, j = _meta_int(meta, "bracket"), _meta_int(meta, "rung"), _meta_int(meta, "config")
    if k is None or s is None or i is None or j is None:
        return None
    rungs, configs = shape.get((k, s), (0, 0))
    return (k, s, i, j) if 0 <= i < rungs and 0 <= j < configs else None


@dataclass(frozen=True)
class _Planned:
    """A trial the schedule wants and the history does not have yet."""

    k: int  # iteration
    s: int
    rung: int
    config: int
    parent: Optional[TrialRecord]  # the same configuration one rung down; None at rung 0


@dataclass
class _BracketState:
    to_create: List[_Planned] = field(default_factory=list)  # in priority order
    promoted: Dict[int, List[int]] = field(default_factory=dict)  # rung -> promoted trial ids
    complete: bool = False  # every trial of every rung has been created
    # ``to_create`` is all in the last rung: once created, the bracket is complete
    ends_when_created: bool = False


def _walk(k: int, bracket: Bracket, tagged: Mapping[TrialKey, TrialRecord], optimization: str) -> _BracketState:
    """Follow one bracket of iteration k rung by rung, as far as the history allows."""
    s = bracket.s
    state = _BracketState()
    members = list(range(bracket.n_configs))  # configuration numbers in rung i
    state.to_create.extend(_Planned(k, s, 0, j, None) for j in members if (k, s, 0, j) not in tagged)
    last = len(bracket.rungs) - 1
    for i in range(last + 1):
        rung = {j: tagged.get((k, s, i, j)) for j in members}
        if any(t is None for t in rung.values()):
            state.ends_when_created = i == last
            return state  # this rung is still being created
        trials: Dict[int, TrialRecord] = {j: t for j, t in rung.items() if t is not None}
        if i == last:
            state.complete = True
            return state
        if any(t.state.live for t in trials.values()):
            return state  # stragglers: the rung cannot be ranked yet
        config_of = {t.trial_id: j for j, t in trials.items()}
        # Trials already created in the next rung are facts (a value corrected later
        # must not promote a second set); the places left go to the best of this
        # rung not promoted yet.
        already = {j for j in members if (k, s, i + 1, j) in tagged}
        places = max(0, bracket.rungs[i + 1].n - len(already))
        best_first = ranked(trials.values(), optimization)
        new = [t for t in best_first if config_of[t.trial_id] not in already][:places]
        state.to_create.extend(_Planned(k, s, i + 1, config_of[t.trial_id], t) for t in new)
        rank = {t.trial_id: pos for pos, t in enumerate(best_first)}
        promoted = sorted(
            [trials[j] for j in already] + new,
            key=lambda t: (rank.get(t.trial_id, len(rank)), t.trial_id),
        )
        state.promoted[i] = [t.trial_id for t in promoted]
        members = [config_of[t.trial_id] for t in promoted]
    return state  # not reached: the last rung returns above


class _Reading:
    """What ``suggest`` reads from a history, brought up to date call by call (memo.py):
    the walk of every bracket of the schedule, and, for a model sampler, what it learns
    from. A bracket's walk reads only the trials tagged with it, so only the brackets of
    new or changed trials are walked again. Should a key appear twice, the first trial
    created wins; a trial whose identity, tags or params changed makes ``extend`` refuse,
    and the reading is built anew."""

    def __init__(self, config: HyperbandConfig):
        self.plan = schedule(config)
        self.shape = {(k, b.s): (len(b.rungs), b.n_configs) for k, b in self.plan}
        self.metric = config.metric
        self.learns = config.sampler.kind != "random"  # random draws read nothing of the history
        self.prints: List[Tuple[Any, ...]] = []
        self.position: Dict[Tuple[int, int], Dict[TrialKey, int]] = {}  # by (k, s): the first trial of each key
        self.walks: Dict[Tuple[int, int], _BracketState] = {}  # by (k, s); missing: to walk
        self.observed: List[Optional[samplers.Observation]] = []  # per position
        self.pending: List[Optional[Dict[str, Any]]] = []  # per position: its params when live
        self.keys: Set[Any] = set()  # the params_key of every trial's params, which never change

    def extend(self, trials: Sequence[TrialRecord]) -> bool:
        found = memo.changes(trials, self.prints, self._key_of)
        if found is None:
            return False
        prints, changed = found
        for i in changed:
            key = self._key_of(prints[i][memo.META])
            if key is not None and self.position.get(key[:2], {}).get(key) == i:
                self.walks.pop(key[:2], None)
            self._learn(i, trials[i])
        for i in range(len(self.prints), len(trials)):
            key = self._key_of(trials[i].meta)
            if key is not None:
                firsts = self.position.setdefault(key[:2], {})
                if key not in firsts:
                    firsts[key] = i
                    self.walks.pop(key[:2], None)
            self.observed.append(None)
            self.pending.append(None)
            self._learn(i, trials[i])
        self.prints = prints
        for k, b in self.plan:
            if (k, b.s) not in self.walks:  # a bracket's walk reads only its own trials
                tagged = {key: trials[i] for key, i in self.position.get((k, b.s), {}).items()}
                self.walks[k, b.s] = _walk(k, b, tagged, self.metric.optimization)
        return True

    def _key_of(self, meta: Optional[Mapping[str, Any]]) -> Optional[TrialKey]:
        return _key_of(meta, self.shape)

    def _learn(self, i: int, t: TrialRecord) -> None:
        if self.learns:
            params = samplers.KeyedParams(t.params)
            ob = samplers.observation_of(t, self.metric, params)
            self.observed[i], self.pending[i] = (None, params) if ob is None else (ob, None)
            self.keys.add(params.key)

    def states(self) -> List[_BracketState]:
        """Every bracket's walk, in the schedule's order."""
        return [self.walks[k, b.s] for k, b in self.plan]

    def observations(self) -> Tuple[List[samplers.Observation], List[Dict[str, Any]]]:
        """``samplers.observations_of`` the history (a model sampler's study only)."""
        return [o for o in self.observed if o is not None], [p for p in self.pending if p is not None]


_MEMO: "memo.Memo[_Reading]" = memo.Memo()


# --------------------------------------------------------------- fresh configurations


def _fresh_configs(space: Space, seed: int, s: int, count: int, k: int = 0) -> Tuple[List[Dict[str, Any]], Set[int]]:
    """The first ``count`` fresh configurations of bracket s of iteration k, and which of
    them repeat an earlier one of that bracket. Drawn from ``sub_rng(seed, s)`` (iteration
    0) in sequence, so the list for a smaller count is a prefix of the list for a larger one."""
    rng = _rng(seed, k, s)
    size = space.size()  # None: continuous, repeats are (almost) impossible
    seen: Set[Any] = set()
    configs: List[Dict[str, Any]] = []
    repeats: Set[int] = set()
    for j in range(count):
        params = samplers.draw_unseen(space, seen, rng, size)
        key = params_key(params)
        if key in seen:
            repeats.add(j)
        seen.add(key)
        configs.append(params)
    return configs, repeats


def _model_configs(space: Space, config: HyperbandConfig, history: History, seed: int, planned: List[_Planned],
                   reading: _Reading) -> Dict[Tuple[int, int], Tuple[Dict[int, Dict[str, Any]], Set[int]]]:
    """Fresh configurations from the study's sampler (``sampler: kde|model``), one per
    planned trial, each drawn with ``sub_rng(seed, s, j)`` (iteration 0) from the history
    as it is now, every earlier iteration's results included: configurations handed out
    in this call count as pending for the next."""
    observed, pending = reading.observations()
    out: Dict[Tuple[int, int], Tuple[Dict[int, Dict[str, Any]], Set[int]]] = {}
    seen = set(reading.keys)  # every trial's params, ended (observed) or live (pending)
    for p in planned:
        params = samplers.propose(space, config.sampler, observed, 1, _rng(seed, p.k, p.s, p.config), pending)[0]
        configs, repeats = out.setdefault((p.k, p.s), ({}, set()))
        key = params_key(params)
        if key in seen:  # tried, pending, or handed out earlier in this call
            repeats.add(p.config)
        seen.add(key)
        configs[p.config] = params
        pending.append(params)
    return out


# -------------------------------------------------------------------------- public


def suggest(space: Space, config: HyperbandConfig, history: History, seed: int, n: int) -> SearchResult:
    """Up to ``n`` trials that can run now, in Hyperband's order (see the module doc)."""
    with _MEMO.reading(config, lambda: _Reading(config), history.trials) as reading:
        return _suggest(space, config, history, seed, n, reading)


def _suggest(space: Space, config: HyperbandConfig, history: History, seed: int, n: int,
             reading: _Reading) -> SearchResult:
    plan, states = reading.plan, reading.states()
    bracket_of = {b.s: b for _, b in plan}  # the same brackets in every iteration
    chosen: List[_Planned] = []
    # Exhausted: nothing will ever be suggested again once this answer is created.
    exhausted = True
    # Start order (see the module doc): it keeps the cheap wide rungs first and each
    # bracket's promotions ahead of later brackets; longest-chain-first measured worse.
    for st in states:
        taken = st.to_create[: max(0, n - len(chosen))]
        chosen.extend(taken)
        exhausted = exhausted and (st.complete or (st.ends_when_created and len(taken) == len(st.to_create)))

    # Sample only as far as the fresh configurations handed out now reach.
    fresh_needed: Dict[Tuple[int, int], int] = {}
    for p in chosen:
        if p.parent is None:
            fresh_needed[p.k, p.s] = max(fresh_needed.get((p.k, p.s), 0), p.config + 1)
    if config.sampler.kind == "random":
        fresh = {(k, s): _fresh_configs(space, seed, s, count, k) for (k, s), count in fresh_needed.items()}
    else:
        fresh = _model_configs(space, config, history, seed, [p for p in chosen if p.parent is None], reading)

    suggestions: List[Suggestion] = []
    repeated: Dict[Tuple[int, int], int] = {}
    for p in chosen:
        meta: Dict[str, Any] = {"bracket": p.s, "rung": p.rung, "config": p.config, "parent": None}
        if config.iterations > 1:
            meta["iteration"] = p.k
        if p.parent is None:
            configs, repeats = fresh[p.k, p.s]
            params = dict(configs[p.config])
            if p.config in repeats:
                repeated[p.k, p.s] = repeated.get((p.k, p.s), 0) + 1
        resume_from = None
        if p.parent is not None:
            params = dict(p.parent.params)  # a promotion keeps its configuration
            meta["parent"] = p.parent.trial_id
            if config.resume:
                resume_from = meta["resume_from"] = p.parent.trial_id
        resource = bracket_of[p.s].rungs[p.rung].resource
        suggestions.append(Suggestion(params=params, resource=resource, meta=meta, resume_from=resume_from))

    notes = []
    size = space.size()
    for (k, s), count in sorted(repeated.items(), key=lambda x: (x[0][0], -x[0][1])):
        why = (
            f"the space has only {size} distinct configurations"
            if size is not None and size < bracket_of[s].n_configs
            else f"no new configuration was found in {MAX_DRAWS_PER_CONFIG} draws"
        )
        where = f"bracket {s}" if config.iterations == 1 else f"iteration {k}, bracket {s}"
        notes.append(
            f"hyperband {where}: {count} configuration(s) repeat earlier ones of the same "
            f"bracket ({why}; it needs {bracket_of[s].n_configs})"
        )
    return SearchResult(
        suggestions=tuple(suggestions),
        exhausted=exhausted,
        notes=tuple(notes),
    )


def promotions(config: HyperbandConfig, history: History, iteration: int = 0) -> Dict[RungKey, List[int]]:
    """For every rung of ``iteration`` whose promotions are decided (all its trials
    finished), the trial ids promoted from it, best first. A rung whose trials all
    failed maps to an empty list. The same ranking as ``suggest``."""
    with _MEMO.reading(config, lambda: _Reading(config), history.trials) as reading:
        plan, states = reading.plan, reading.states()
    out: Dict[RungKey, List[int]] = {}
    for (k, bracket), b_state in zip(plan, states):
        if k == iteration:
            for i, ids in b_state.promoted.items():
                out[(bracket.s, i)] = ids
    return out
