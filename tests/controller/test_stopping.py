"""Per-trial stopping rules: median, truncation, diff."""
from hpc_tune.controller.stopping import trials_to_stop
from hpc_tune.spec.model import Metric, TrialPolicy

LOSS = Metric("loss", "minimize")
ACC = Metric("acc", "maximize")


def curves(**trials):
    return {int(k[1:]): {"loss": tuple(enumerate(v, start=1))} for k, v in trials.items()}


def test_median_stops_a_trial_worse_than_the_median_of_running_averages():
    c = curves(t0=[1.0, 0.8, 0.6], t1=[1.1, 0.9, 0.7], t2=[0.9, 0.7, 0.5], t3=[3.0, 2.9])
    policy = TrialPolicy("median", LOSS, min_samples=3, min_interval=2)
    stops = trials_to_stop([policy], c, live={3})
    assert [tid for tid, _ in stops] == [3] and "median" in stops[0][1]


def test_median_waits_for_enough_samples_and_the_minimum_interval():
    c = curves(t0=[1.0, 0.8], t1=[1.1, 0.9], t3=[3.0, 2.9])
    assert trials_to_stop([TrialPolicy("median", LOSS, min_samples=3)], c, live={3}) == []
    c = curves(t0=[1.0, 0.8], t1=[1.1, 0.9], t2=[1.0, 0.7], t3=[3.0])
    assert trials_to_stop([TrialPolicy("median", LOSS, min_samples=3, min_interval=2)], c, live={3}) == []


def test_a_good_trial_is_never_stopped_by_the_median_rule():
    c = curves(t0=[1.0, 0.8], t1=[1.1, 0.9], t2=[1.0, 0.7], t3=[0.5, 0.4])
    assert trials_to_stop([TrialPolicy("median", LOSS)], c, live={3}) == []


def test_truncation_stops_the_worst_percent_at_a_step():
    c = curves(t0=[0.1, 0.1], t1=[0.2, 0.2], t2=[0.3, 0.3], t3=[0.9, 0.9])
    stops = trials_to_stop([TrialPolicy("truncation", LOSS, percent=25)], c, live={0, 1, 2, 3})
    assert [tid for tid, _ in stops] == [3]


def test_diff_stops_trials_far_from_the_best_and_honours_maximize():
    c = {0: {"acc": ((1, 0.90),)}, 1: {"acc": ((1, 0.88),)}, 2: {"acc": ((1, 0.50),)}, 3: {"acc": ((1, 0.89),)}}
    stops = trials_to_stop([TrialPolicy("diff", ACC, percent=10)], c, live={1, 2})
    assert [tid for tid, _ in stops] == [2] and "diff" in stops[0][1]


def test_evaluation_interval_skips_steps_between_evaluations():
    c = curves(t0=[1, 1, 1], t1=[1, 1, 1], t2=[1, 1, 1], t3=[9, 9, 9])
    assert trials_to_stop([TrialPolicy("median", LOSS, evaluation_interval=2)], c, live={3}) == []
    c = curves(t0=[1, 1, 1, 1], t1=[1, 1, 1, 1], t2=[1, 1, 1, 1], t3=[9, 9, 9, 9])
    assert [t for t, _ in trials_to_stop([TrialPolicy("median", LOSS, evaluation_interval=2)], c, live={3})] == [3]


def test_a_curve_that_starts_after_the_step_is_not_compared_at_it():
    # Trial 1 reported first at step 3: at trial 0's step 2 it has no value (it used to make
    # the median of nothing, and None in truncation and diff). Every curve is kept now, so
    # such curves reach the rules.
    curves = {0: {"loss": ((2, 0.0),)}, 1: {"loss": ((3, 0.0),)}}
    for kind in ("median", "truncation", "diff"):
        policy = TrialPolicy(kind, Metric("loss", "minimize"), percent=50, min_samples=1, min_interval=0,
                             evaluation_interval=1)
        assert trials_to_stop([policy], curves, {0, 1}) == []
