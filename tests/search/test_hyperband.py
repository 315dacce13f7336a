"""Hyperband: the schedule (pinned against DIALECT.md and the paper's formulas) and
the pure searcher, driven through whole studies by a small fake controller."""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpc_tune.search import hyperband
from hpc_tune.search.base import History, SearchResult, TrialRecord, TrialState
from hpc_tune.space import Discrete, Space, Uniform
from hpc_tune.spec.model import HyperbandConfig, Metric, ResourceConfig


def make_config(
    max_iter: float,
    eta: float,
    resource_type: str = "int",
    optimization: str = "minimize",
    resume: bool = False,
) -> HyperbandConfig:
    return HyperbandConfig(
        max_iter=max_iter,
        eta=eta,
        resource=ResourceConfig("epochs", resource_type),
        metric=Metric("loss", optimization),
        resume=resume,
    )


def table(config: HyperbandConfig) -> List[Tuple[int, List[Tuple[int, Any]]]]:
    return [(b.s, [(r.n, r.resource) for r in b.rungs]) for b in hyperband.brackets(config)]


SPACE = Space({
    "lr": Uniform(math.log(1e-5), math.log(1e-1), log=True, kind="loguniform"),
    "width": Discrete((32, 64, 128, 256)),
    "x": Uniform(0.0, 1.0),
})


def objective(params: Dict[str, Any], resource: float) -> float:
    """A loss that improves with the budget and is best near x = 0.3."""
    return (params["x"] - 0.3) ** 2 + 1.0 / resource + params["width"] * 1e-4


# ---------------------------------------------------------------- a fake controller


@dataclass
class Study:
    """Stands in for the controller and the journal: asks ``suggest`` for up to n
    trials, records them as PENDING, and lets the test finish them as it likes."""

    config: HyperbandConfig
    space: Space = SPACE
    seed: int = 7
    trials: List[TrialRecord] = field(default_factory=list)
    calls: List[Tuple[History, SearchResult]] = field(default_factory=list)

    @property
    def history(self) -> History:
        return History.of(self.trials)

    def live(self) -> List[TrialRecord]:
        return [t for t in self.trials if t.state.live]

    def ask(self, n: int) -> SearchResult:
        history = self.history
        result = hyperband.suggest(self.space, self.config, history, self.seed, n)
        self.calls.append((history, result))
        for s in result.suggestions:
            self.trials.append(TrialRecord(
                trial_id=len(self.trials), params=dict(s.params), state=TrialState.PENDING,
                resource=s.resource, meta=dict(s.meta),
            ))
        return result

    def finish(self, trial_id: int, state: TrialState = TrialState.COMPLETED, value: Optional[float] = None) -> None:
        self.trials[trial_id] = replace(self.trials[trial_id], state=state, value=value)

    def finish_with(self, trial: TrialRecord, loss: Callable[[Dict[str, Any], float], float],
                    failing: Callable[[TrialRecord], bool]) -> None:
        if failing(trial):
            self.finish(trial.trial_id, TrialState.FAILED)
        else:
            self.finish(trial.trial_id, TrialState.COMPLETED, loss(trial.params, trial.resource))


def never(trial: TrialRecord) -> bool:
    return False


def run_study(
    study: Study,
    slots: int = 10**6,
    loss: Callable[[Dict[str, Any], float], float] = objective,
    failing: Callable[[TrialRecord], bool] = never,
    finish_fraction: float = 1.0,
    rng_seed: int = 0,
    max_rounds: int = 5000,
) -> SearchResult:
    """Drive the study to its end: each round fills the free slots, then finishes the
    live trials (all of them, or each with probability ``finish_fraction`` to leave
    stragglers). Fails if the searcher ever deadlocks (nothing live, nothing to
    run, not exhausted)."""
    coin = random.Random(rng_seed)
    for _ in range(max_rounds):
        result = study.ask(slots - len(study.live()))
        live = study.live()
        if not live:
            assert result.exhausted, "deadlock: nothing runs, nothing suggested, not exhausted"
            return result
        for t in live:
            if finish_fraction >= 1.0 or coin.random() < finish_fraction:
                study.finish_with(t, loss, failing)
    raise AssertionError("the study did not end")


def by_rung(trials: List[TrialRecord]) -> Dict[Tuple[int, int], List[TrialRecord]]:
    out: Dict[Tuple[int, int], List[TrialRecord]] = {}
    for t in trials:
        out.setdefault((t.meta["bracket"], t.meta["rung"]), []).append(t)
    return out


def check_schedule(study: Study, failures_expected: bool = False) -> None:
    """Invariants of a finished study: rung sizes and resources as ``brackets()``
    says, every promotion taken from the top of its own rung, with its parent's
    parameters."""
    schedule = {b.s: b for b in hyperband.brackets(study.config)}
    rungs = by_rung(study.trials)
    for s, bracket in schedule.items():
        for i, rung in enumerate(bracket.rungs):
            trials = rungs.get((s, i), [])
            if failures_expected:
                assert len(trials) <= rung.n
            else:
                assert len(trials) == rung.n, (s, i)
            assert all(t.resource == rung.resource and type(t.resource) is type(rung.resource) for t in trials)
            assert len({t.meta["config"] for t in trials}) == len(trials)
    by_id = {t.trial_id: t for t in study.trials}
    sign = -1.0 if study.config.metric.optimization == "maximize" else 1.0
    for (s, i), trials in rungs.items():
        for t in trials:
            if i == 0:
                assert t.meta["parent"] is None
                continue
            parent = by_id[t.meta["parent"]]
            assert (parent.meta["bracket"], parent.meta["rung"], parent.meta["config"]) == (s, i - 1, t.meta["config"])
            assert parent.params == t.params
            assert parent.state in (TrialState.COMPLETED, TrialState.STOPPED)
            assert parent.value is not None and math.isfinite(parent.value)
            # among the top k of ITS rung, k = the size of the next rung
            k = schedule[s].rungs[i].n
            others = sorted(sign * o.value for o in rungs[(s, i - 1)] if o.value is not None and o.state.finished)
            assert sign * parent.value <= others[k - 1]


# ----------------------------------------------------------------------- the schedule


def test_pinned_table_r81_eta3() -> None:
    assert table(make_config(81, 3)) == [
        (4, [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)]),
        (3, [(34, 3), (11, 9), (3, 27), (1, 81)]),
        (2, [(15, 9), (5, 27), (1, 81)]),
        (1, [(8, 27), (2, 81)]),
        (0, [(5, 81)]),
    ]
    assert sum(b.n_configs for b in hyperband.brackets(make_config(81, 3))) == 143
    assert sum(b.n_trials for b in hyperband.brackets(make_config(81, 3))) == 206


def test_pinned_table_r243_eta3_has_six_brackets() -> None:
    # n = ceil(6 * 3^s / (s + 1)): 243, 98 (97.2), 41 (40.5), 18, 9, 6
    assert table(make_config(243, 3)) == [
        (5, [(243, 1), (81, 3), (27, 9), (9, 27), (3, 81), (1, 243)]),
        (4, [(98, 3), (32, 9), (10, 27), (3, 81), (1, 243)]),
        (3, [(41, 9), (13, 27), (4, 81), (1, 243)]),
        (2, [(18, 27), (6, 81), (2, 243)]),
        (1, [(9, 81), (3, 243)]),
        (0, [(6, 243)]),
    ]


def test_pinned_table_r100_eta3_int_rounds_to_nearest() -> None:
    # 100/81 = 1.23 -> 1, 100/27 = 3.70 -> 4, 100/9 = 11.1 -> 11, 100/3 = 33.3 -> 33
    assert table(make_config(100, 3, "int")) == [
        (4, [(81, 1), (27, 4), (9, 11), (3, 33), (1, 100)]),
        (3, [(34, 4), (11, 11), (3, 33), (1, 100)]),
        (2, [(15, 11), (5, 33), (1, 100)]),
        (1, [(8, 33), (2, 100)]),
        (0, [(5, 100)]),
    ]
    for b in hyperband.brackets(make_config(100, 3, "int")):
        assert all(type(r.resource) is int for r in b.rungs)
        assert b.rungs[-1].resource == 100  # no truncation to 99 (Polyaxon's 99.99)


def test_pinned_table_r10_eta3_float() -> None:
    got = table(make_config(10, 3, "float"))
    assert [(s, [n for n, _ in rungs]) for s, rungs in got] == [(2, [9, 3, 1]), (1, [5, 1]), (0, [3])]
    resources = [[r for _, r in rungs] for _, rungs in got]
    assert resources[0] == pytest.approx([10 / 9, 10 / 3, 10])
    assert resources[1] == pytest.approx([10 / 3, 10])
    assert resources[2] == [10.0]
    assert all(type(r) is float for rs in resources for r in rs)
    assert resources[0][:2] == [1.11111111111, 3.33333333333]  # cleaned of binary noise


def test_int_resources_round_half_up_never_truncate() -> None:
    # R=5, eta=2: 5/4 = 1.25 -> 1, 5/2 = 2.5 -> 3 (round half up; Python's round gives 2)
    assert table(make_config(5, 2, "int"))[0] == (2, [(4, 1), (2, 3), (1, 5)])
    # a fractional R with an int resource: its own rung rounds down, never beyond R
    assert table(make_config(10.5, 3, "int")) == [
        (2, [(9, 1), (3, 4), (1, 10)]),  # 10.5/9 = 1.17 -> 1, 10.5/3 = 3.5 -> 4
        (1, [(5, 4), (1, 10)]),
        (0, [(3, 10)]),
    ]


def test_bracket_to_dict_is_the_plan_json_shape() -> None:
    first = hyperband.brackets(make_config(81, 3))[0]
    assert first.to_dict() == {
        "bracket": 4,
        "rungs": [{"n": 81, "resource": 1}, {"n": 27, "resource": 3}, {"n": 9, "resource": 9},
                  {"n": 3, "resource": 27}, {"n": 1, "resource": 81}],
    }
    json.dumps([b.to_dict() for b in hyperband.brackets(make_config(10, 3, "float"))])


@pytest.mark.parametrize(("max_iter", "eta", "expected"), [
    (243, 3, 5), (243.0, 3.0, 5), (242, 3, 4), (1000, 10, 3), (1000.0, 10.0, 3), (999, 10, 2),
    (8, 2, 3), (81, 3, 4), (80, 3, 3), (100, 3, 4), (10, 3, 2), (1, 3, 0), (2, 3, 0),
    (10**15, 10, 15), (1.21, 1.1, 2), (6.25, 2.5, 2), (6.24, 2.5, 1),
])
def test_s_max_is_exact(max_iter: float, eta: float, expected: int) -> None:
    assert hyperband.s_max(max_iter, eta) == expected
    assert hyperband.brackets(make_config(max_iter, eta, "float"))[0].s == expected


def test_float_logarithm_would_be_wrong() -> None:
    """Why s_max is not floor(log(R)/log(eta)): the float log misses exact powers."""
    assert math.floor(math.log(243) / math.log(3)) == 4
    assert math.floor(math.log(1000, 10)) == 2
    assert hyperband.s_max(243, 3) == 5 and hyperband.s_max(1000, 10) == 3


@given(eta=st.integers(2, 12), k=st.integers(0, 14))
def test_s_max_at_and_around_exact_powers(eta: int, k: int) -> None:
    assert hyperband.s_max(eta**k, eta) == k
    assert hyperband.s_max(float(eta**k), float(eta)) == k
    assert hyperband.s_max(eta ** (k + 1) - 1, eta) == k
    if k >= 1:
        assert hyperband.s_max(eta**k - 1, eta) == k - 1


@settings(max_examples=200)
@given(
    max_iter=st.one_of(st.integers(1, 100_000), st.floats(1.0, 1e5, allow_nan=False)),
    eta=st.one_of(st.integers(2, 10), st.sampled_from([1.5, 2.5, 3.0, 4.5])),
    resource_type=st.sampled_from(["int", "float"]),
)
def test_schedule_invariants(max_iter: float, eta: float, resource_type: str) -> None:
    config = make_config(max_iter, eta, resource_type)
    top = hyperband.s_max(max_iter, eta)
    schedule = hyperband.brackets(config)
    assert [b.s for b in schedule] == list(range(top, -1, -1))
    for b in schedule:
        assert len(b.rungs) == b.s + 1
        sizes = [r.n for r in b.rungs]
        assert sizes[-1] >= 1 and sizes == sorted(sizes, reverse=True)
        resources = [r.resource for r in b.rungs]
        assert resources == sorted(resources)
        # no rung beyond R, and the last one is R itself
        assert all(r <= max_iter for r in resources)
        if resource_type == "float":
            assert resources[-1] == pytest.approx(max_iter)
        else:
            assert resources[-1] == math.floor(max_iter)  # R itself, whole
            assert all(type(r) is int and r >= 1 for r in resources)
        if isinstance(eta, int):
            # the paper's top_k count, floor(n_i / eta), is the next rung's size
            assert all(sizes[i + 1] == sizes[i] // eta for i in range(len(sizes) - 1))


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="eta"):
        hyperband.brackets(make_config(81, 1))
    with pytest.raises(ValueError, match="max_iter"):
        hyperband.brackets(make_config(0.5, 3))
    with pytest.raises(ValueError, match="resource type"):
        hyperband.brackets(make_config(81, 3, "long"))
    with pytest.raises(TypeError):
        hyperband.s_max(True, 3)


# ------------------------------------------------------------------------ suggestions


def test_first_suggestions_are_bracket_smax_rung0() -> None:
    result = hyperband.suggest(SPACE, make_config(81, 3), History(), seed=1, n=5)
    assert len(result.suggestions) == 5 and not result.exhausted
    for j, s in enumerate(result.suggestions):
        assert s.meta == {"bracket": 4, "rung": 0, "config": j, "parent": None}
        assert s.resource == 1
        assert SPACE.contains(s.params)


def test_n_zero_or_negative_suggests_nothing() -> None:
    for n in (0, -3):
        result = hyperband.suggest(SPACE, make_config(81, 3), History(), seed=1, n=n)
        assert result.suggestions == () and not result.exhausted


def test_deterministic_and_seed_dependent() -> None:
    config = make_config(81, 3)
    a = hyperband.suggest(SPACE, config, History(), seed=11, n=20)
    b = hyperband.suggest(SPACE, config, History(), seed=11, n=20)
    c = hyperband.suggest(SPACE, config, History(), seed=12, n=20)
    assert a == b
    assert [s.params for s in a.suggestions] != [s.params for s in c.suggestions]


def test_fresh_configurations_do_not_depend_on_batch_size() -> None:
    """Asking 3 then 3 gives the same trials as asking 6 at once."""
    one_go = Study(make_config(81, 3))
    one_go.ask(6)
    in_two = Study(make_config(81, 3))
    in_two.ask(3)
    in_two.ask(3)
    assert [(t.params, t.meta) for t in one_go.trials] == [(t.params, t.meta) for t in in_two.trials]


def test_brackets_draw_different_configurations() -> None:
    study = Study(make_config(9, 3))
    study.ask(9 + 5 + 3)  # only bracket 2 rung 0 can be offered at first...
    assert {t.meta["bracket"] for t in study.trials} == {2, 1, 0}  # ...and the others, to fill slots
    per_bracket = {s: [t.params for t in study.trials if t.meta["bracket"] == s] for s in (2, 1, 0)}
    assert per_bracket[2][:3] != per_bracket[1][:3] != per_bracket[0][:3]


@pytest.mark.parametrize("slots", [1, 7, 10**6])
def test_full_run_r81_eta3(slots: int) -> None:
    study = Study(make_config(81, 3))
    final = run_study(study, slots=slots)
    assert final.exhausted and final.suggestions == ()
    check_schedule(study)
    assert sum(1 for t in study.trials if t.meta["rung"] == 0) == 143  # configurations
    assert len(study.trials) == 206  # trials: every promotion is a trial of its own
    if slots < 10**6:
        assert max(len(h.live) for h, _ in study.calls) <= slots


@pytest.mark.parametrize(("max_iter", "eta", "resource_type"), [
    (243, 3, "int"), (100, 3, "int"), (10, 3, "float"), (16, 2, "int"), (10, 2.5, "float"),
])
def test_full_runs_follow_the_schedule(max_iter: float, eta: float, resource_type: str) -> None:
    study = Study(make_config(max_iter, eta, resource_type))
    run_study(study, slots=13)
    check_schedule(study)
    assert len(study.trials) == sum(b.n_trials for b in hyperband.brackets(study.config))


def test_full_run_with_stragglers_and_failures() -> None:
    study = Study(make_config(81, 3))

    def failing(t: TrialRecord) -> bool:
        return t.params["x"] < 0.25  # some of the would-be best configurations

    run_study(study, slots=20, failing=failing, finish_fraction=0.3, rng_seed=3)
    check_schedule(study, failures_expected=True)
    by_id = {t.trial_id: t for t in study.trials}
    assert any(t.state is TrialState.FAILED for t in study.trials)
    assert all(by_id[t.meta["parent"]].state is not TrialState.FAILED for t in study.trials if t.meta["rung"] > 0)


@settings(max_examples=15, deadline=None)
@given(
    max_iter=st.sampled_from([4, 9, 16, 27, 30]),
    eta=st.sampled_from([2, 3, 4]),
    slots=st.integers(1, 40),
    seed=st.integers(0, 2**31),
    finish_fraction=st.sampled_from([0.2, 0.6, 1.0]),
)
def test_any_concurrency_completes_the_schedule(
    max_iter: int, eta: int, slots: int, seed: int, finish_fraction: float,
) -> None:
    study = Study(make_config(max_iter, eta), seed=seed)
    run_study(study, slots=slots, finish_fraction=finish_fraction, rng_seed=seed)
    check_schedule(study)


def test_straggler_does_not_block_the_next_bracket() -> None:
    study = Study(make_config(81, 3))
    first = study.ask(81)
    assert all(s.meta["bracket"] == 4 and s.meta["rung"] == 0 for s in first.suggestions)
    straggler = study.trials[-1].trial_id
    for t in study.trials[:-1]:
        study.finish_with(t, objective, never)
    study.finish(straggler, TrialState.RUNNING)

    nxt = study.ask(5)
    assert [(s.meta["bracket"], s.meta["rung"]) for s in nxt.suggestions] == [(3, 0)] * 5
    assert (4, 0) not in hyperband.promotions(study.config, study.history)

    study.finish(straggler, TrialState.COMPLETED, 0.5)
    promoted = hyperband.promotions(study.config, study.history)[(4, 0)]
    assert len(promoted) == 27
    after = study.ask(30)
    # bracket 4's promotions come first (start order), then bracket 3 fills the rest
    assert [(s.meta["bracket"], s.meta["rung"]) for s in after.suggestions] == [(4, 1)] * 27 + [(3, 0)] * 3
    assert [s.meta["parent"] for s in after.suggestions[:27]] == promoted


def test_short_of_slots_earlier_brackets_and_their_promotions_go_first() -> None:
    """The order decides who waits when fewer slots are free than trials can be
    created: brackets in start order, so an earlier bracket's promotions go before a
    later bracket's fresh configurations, and bracket 0 (R for every trial) comes last
    (longest-chain-first was measured and not adopted: see the module doc)."""
    study = Study(make_config(9, 3))  # s=2: 9@1, 3@3, 1@9; s=1: 5@3, 1@9; s=0: 3@9
    first = study.ask(11)
    assert [(s.meta["bracket"], s.meta["rung"]) for s in first.suggestions] == [(2, 0)] * 9 + [(1, 0)] * 2
    for t in study.trials[:9]:
        study.finish(t.trial_id, TrialState.COMPLETED, float(t.meta["config"]))  # config j scores j
    full = hyperband.suggest(SPACE, study.config, study.history, study.seed, 100)
    keys = [(s.meta["bracket"], s.meta["rung"], s.meta["config"]) for s in full.suggestions]
    assert keys == [(2, 1, 0), (2, 1, 1), (2, 1, 2), (1, 0, 2), (1, 0, 3), (1, 0, 4), (0, 0, 0), (0, 0, 1), (0, 0, 2)]
    for k in range(len(keys) + 1):  # fewer free slots: the first k of the same list
        assert hyperband.suggest(SPACE, study.config, study.history, study.seed, k).suggestions == full.suggestions[:k]


def test_any_smaller_n_gets_the_first_n_of_the_same_order() -> None:
    """``suggest`` hands out a priority list: asking for fewer trials gives its head,
    with the same parameters, at every point of a run with stragglers."""
    study = Study(make_config(27, 3, resume=True), seed=3)
    run_study(study, slots=12, finish_fraction=0.4, rng_seed=2)
    checked = 0
    for history, _ in study.calls:
        full = hyperband.suggest(SPACE, study.config, history, study.seed, 10**6).suggestions
        if len(full) < 2:
            continue
        checked += 1
        for k in range(len(full)):
            assert hyperband.suggest(SPACE, study.config, history, study.seed, k).suggestions == full[:k]
    assert checked > 5


def _nine(study: Study, values: Dict[int, Tuple[TrialState, Optional[float]]]) -> None:
    """Create bracket 2's rung 0 of R=9, eta=3 (9 trials) and finish config j with
    values[j], or as COMPLETED with value j."""
    study.ask(9)
    for t in study.trials:
        j = t.meta["config"]
        state, value = values.get(j, (TrialState.COMPLETED, float(j)))
        study.finish(t.trial_id, state, value)


def test_failed_cancelled_and_valueless_trials_are_never_promoted() -> None:
    study = Study(make_config(9, 3))
    _nine(study, {
        0: (TrialState.FAILED, None),
        1: (TrialState.CANCELLED, None),
        2: (TrialState.COMPLETED, float("nan")),
        8: (TrialState.STOPPED, -1.0),  # stopped early: counts with its value
    })
    promoted = hyperband.promotions(study.config, study.history)[(2, 0)]
    assert [study.trials[i].meta["config"] for i in promoted] == [8, 3, 4]
    result = study.ask(3)
    assert [(s.meta["rung"], s.meta["config"]) for s in result.suggestions] == [(1, 8), (1, 3), (1, 4)]
    assert [s.resource for s in result.suggestions] == [3, 3, 3]


def test_fewer_valid_trials_give_fewer_promotions() -> None:
    study = Study(make_config(9, 3))
    _nine(study, {j: (TrialState.FAILED, None) for j in range(7)})
    assert len(hyperband.promotions(study.config, study.history)[(2, 0)]) == 2
    result = study.ask(100)
    rung1 = [s for s in result.suggestions if s.meta["bracket"] == 2]
    assert [s.meta["config"] for s in rung1] == [7, 8]
    final = run_study(study)
    assert final.exhausted
    assert len(by_rung(study.trials)[(2, 2)]) == 1


def test_a_rung_that_failed_entirely_ends_its_bracket() -> None:
    study = Study(make_config(9, 3))
    _nine(study, {j: (TrialState.FAILED, None) for j in range(9)})
    assert hyperband.promotions(study.config, study.history)[(2, 0)] == []
    final = run_study(study)
    assert final.exhausted
    assert (2, 1) not in by_rung(study.trials)


@pytest.mark.parametrize(("optimization", "expected"), [("minimize", [0, 1, 2]), ("maximize", [8, 7, 6])])
def test_minimize_and_maximize(optimization: str, expected: List[int]) -> None:
    study = Study(make_config(9, 3, optimization=optimization))
    _nine(study, {})  # value of config j is j
    promoted = hyperband.promotions(study.config, study.history)[(2, 0)]
    assert [study.trials[i].meta["config"] for i in promoted] == expected
    assert [s.meta["config"] for s in study.ask(3).suggestions] == expected
    run_study(study)
    check_schedule(study)


def test_promotions_keep_params_and_resume_from_parent() -> None:
    study = Study(make_config(9, 3, resume=True))
    _nine(study, {})
    result = study.ask(3)
    for s in result.suggestions:
        parent = study.trials[s.meta["parent"]]
        assert s.params == parent.params
        assert s.meta["resume_from"] == parent.trial_id
        assert s.resource == 3  # the total budget of rung 1, not the increment
    assert all("resume_from" not in t.meta for t in study.trials if t.meta["rung"] == 0)

    plain = Study(make_config(9, 3, resume=False))
    _nine(plain, {})
    assert all("resume_from" not in s.meta for s in plain.ask(3).suggestions)


def test_exhausted_once_everything_is_created_even_with_live_trials() -> None:
    study = Study(make_config(3, 3))  # s_max = 1: 3@1 -> 1@3; then 2@3
    assert table(study.config) == [(1, [(3, 1), (1, 3)]), (0, [(2, 3)])]
    first = study.ask(10)
    assert len(first.suggestions) == 5 and not first.exhausted
    for t in study.trials:
        study.finish_with(t, objective, never)
    last = study.ask(10)
    assert len(last.suggestions) == 1 and last.exhausted  # its trial is still pending
    assert study.ask(10) == SearchResult(exhausted=True)


def test_foreign_trials_are_ignored() -> None:
    clean = Study(make_config(9, 3))
    _nine(clean, {})
    expected = hyperband.suggest(SPACE, clean.config, clean.history, clean.seed, 10)

    foreign = [
        TrialRecord(trial_id=100, params={"x": 0.3}, state=TrialState.COMPLETED, value=-5.0, meta={}),
        TrialRecord(trial_id=101, params={"x": 0.3}, state=TrialState.RUNNING,
                    meta={"bracket": 99, "rung": 0, "config": 0}),
        TrialRecord(trial_id=102, params={"x": 0.3}, state=TrialState.RUNNING,
                    meta={"bracket": "2", "rung": 0, "config": 0}),
        TrialRecord(trial_id=103, params={"x": 0.3}, state=TrialState.RUNNING,
                    meta={"bracket": 2, "rung": 0, "config": 50}),
    ]
    mixed = History.of(foreign[:2] + list(clean.trials) + foreign[2:])
    assert hyperband.suggest(SPACE, clean.config, mixed, clean.seed, 10) == expected


def test_created_promotions_are_facts_even_if_values_change() -> None:
    """A value corrected after promotion must not promote a second set."""
    study = Study(make_config(9, 3))
    _nine(study, {})
    study.ask(3)  # promotes configs 0, 1, 2
    worst = next(t for t in study.trials if t.meta["rung"] == 0 and t.meta["config"] == 8)
    study.finish(worst.trial_id, TrialState.COMPLETED, -100.0)
    promoted = hyperband.promotions(study.config, study.history)[(2, 0)]
    assert sorted(study.trials[i].meta["config"] for i in promoted) == [0, 1, 2]
    assert all(s.meta["bracket"] != 2 for s in study.ask(100).suggestions)


# --------------------------------------------------------------------- restart purity


def _journal_round_trip(history: History) -> History:
    """What a restarted controller reads back: params and meta through JSON."""
    return History.of(
        replace(t, params=json.loads(json.dumps(t.params)), meta=json.loads(json.dumps(t.meta)))
        for t in history.trials
    )


def test_replaying_any_recorded_history_gives_the_same_answer() -> None:
    study = Study(make_config(27, 3, resume=True), seed=5)
    run_study(study, slots=9, finish_fraction=0.4, rng_seed=1)
    assert len(study.calls) > 20
    for history, result in study.calls:
        n = 9 - len(history.live)
        replayed = hyperband.suggest(SPACE, study.config, _journal_round_trip(history), study.seed, n)
        assert replayed == result


def test_truncated_history_gives_the_same_next_suggestions() -> None:
    """Synchronous rounds: the final history cut at a round boundary is exactly what
    the controller saw then, so a fresh start from it must continue the same way."""
    study = Study(make_config(81, 3), seed=9)
    run_study(study, slots=10)
    final = study.trials
    for history, result in study.calls:
        truncated = History.of(final[: len(history)])
        assert truncated == history
        assert hyperband.suggest(SPACE, study.config, truncated, study.seed, 10 - len(history.live)) == result


# --------------------------------------------------------------------------- duplicates


def test_no_duplicates_within_a_bracket_when_the_space_allows() -> None:
    space = Space({"a": Discrete(tuple(range(12)))})
    study = Study(make_config(9, 3), space=space)
    result = study.ask(9)
    assert len({s.params["a"] for s in result.suggestions}) == 9
    assert result.notes == ()


def test_a_tiny_space_repeats_with_a_note_instead_of_hanging() -> None:
    space = Space({"a": Discrete((1, 2))})
    study = Study(make_config(9, 3), space=space)
    result = study.ask(9)
    assert len(result.suggestions) == 9  # the bracket keeps its shape
    assert {s.params["a"] for s in result.suggestions[:2]} == {1, 2}
    assert len(result.notes) == 1 and "only 2 distinct" in result.notes[0]
    run_study(study, loss=lambda params, resource: params["a"] + 1.0 / resource)
    check_schedule(study)


def test_zero_probability_values_and_coarse_quantisation_do_not_hang() -> None:
    weighted = Space({"a": Discrete((1, 2, 3), probabilities=(1.0, 0.0, 0.0), kind="pvalues")})
    result = hyperband.suggest(weighted, make_config(9, 3), History(), 0, 9)
    assert [s.params["a"] for s in result.suggestions] == [1] * 9 and result.notes

    coarse = Space({"q": Uniform(0.0, 1.0, q=0.5, kind="quniform")})  # 0, 0.5, 1: size unknown
    result = hyperband.suggest(coarse, make_config(9, 3), History(), 0, 9)
    assert len(result.suggestions) == 9
    assert {s.params["q"] for s in result.suggestions} == {0.0, 0.5, 1.0}
    assert result.notes and "draws" in result.notes[0]


# --------------------------------------------------------------------------- iterations


def _without_iteration(meta: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in meta.items() if k != "iteration"}


@pytest.mark.parametrize("sampler", ["random", "kde"])
def test_iterations_run_the_schedule_again_and_iteration_0_is_a_one_iteration_study(sampler: str) -> None:
    from hpc_tune.spec.model import SamplerConfig

    one = replace(make_config(27, 3, resume=True), sampler=SamplerConfig(kind=sampler))
    three = replace(one, iterations=3)
    single, multi = Study(one, seed=3), Study(three, seed=3)
    run_study(single, slots=4)
    run_study(multi, slots=4)
    per_iteration = sum(b.n_trials for b in hyperband.brackets(one))
    assert len(single.trials) == per_iteration and len(multi.trials) == 3 * per_iteration
    assert [t.meta["iteration"] for t in multi.trials] == sorted(t.meta["iteration"] for t in multi.trials)
    first = multi.trials[:per_iteration]
    assert [(t.params, _without_iteration(t.meta), t.resource) for t in first] == \
        [(t.params, t.meta, t.resource) for t in single.trials]
    for k in range(3):  # each iteration is the whole schedule, promotions inside it
        of_k = Study(one, trials=[t for t in multi.trials if t.meta["iteration"] == k])
        check_schedule(of_k)
        assert all(multi.trials[t.meta["parent"]].meta["iteration"] == k
                   for t in of_k.trials if t.meta["parent"] is not None)
    later = {json.dumps(t.params, sort_keys=True) for t in multi.trials[per_iteration:] if t.meta["rung"] == 0}
    assert len(later) > 0.9 * 2 * sum(b.n_configs for b in hyperband.brackets(one))  # fresh draws, not repeats


def test_a_model_sampler_learns_from_earlier_iterations() -> None:
    from hpc_tune.search import samplers
    from hpc_tune.spec.model import SamplerConfig

    config = replace(make_config(9, 3), sampler=SamplerConfig(kind="kde"), iterations=2)
    study = Study(config, seed=11)
    run_study(study, slots=1)
    k1 = next(i for i, t in enumerate(study.trials) if t.meta["iteration"] == 1)
    before = History.of(study.trials[:k1])
    observed, pending = samplers.observations_of(before, config.metric)
    assert not pending and len(observed) == k1  # the whole first iteration, ended
    s = study.trials[k1].meta["bracket"]
    expected = samplers.propose(SPACE, config.sampler, observed, 1,
                                hyperband._rng(study.seed, 1, s, 0), [])[0]
    assert study.trials[k1].params == expected


def test_iterations_replay_from_any_recorded_history() -> None:
    from hpc_tune.spec.model import SamplerConfig

    study = Study(replace(make_config(9, 3, resume=True), sampler=SamplerConfig(kind="kde"), iterations=3), seed=2)
    run_study(study, slots=3, finish_fraction=0.5, rng_seed=4)
    assert {t.meta["iteration"] for t in study.trials} == {0, 1, 2}
    for history, result in study.calls:
        n = 3 - len(history.live)
        assert hyperband.suggest(SPACE, study.config, _journal_round_trip(history), study.seed, n) == result
