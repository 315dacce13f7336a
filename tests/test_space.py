"""The search space: the exact meaning of every kind, grids, and the unit-cube encoding."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from hpc_tune.space import (
    Discrete,
    Normal,
    Space,
    Uniform,
    clean_number,
    numpy_geomspace,
    numpy_linspace,
    numpy_logspace,
    numpy_range,
    params_key,
)

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rng(seed=0):
    return np.random.default_rng(seed)


# ------------------------------------------------------------------ numpy-generated kinds


def test_range_excludes_stop():
    assert numpy_range(0, 5, 1).values == (0, 1, 2, 3, 4)
    assert numpy_range(10, 600, 50).values == tuple(range(10, 600, 50))
    assert numpy_range(10, 600, 50).values[-1] == 560
    assert numpy_range(-5, 0, 1).values == (-5, -4, -3, -2, -1)
    assert numpy_range(5, 0, -2).values == (5, 3, 1)


def test_range_float_steps_are_clean():
    assert numpy_range(0, 1, 0.1).values == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    assert numpy_range(0, 1, 0.25).values == (0.0, 0.25, 0.5, 0.75)


def test_range_ints_stay_ints():
    assert all(type(v) is int for v in numpy_range(2, 8, 2).values)


@pytest.mark.parametrize("args", [(0, 1, 0), (5, 1, 1), (0, 1, -1)])
def test_range_invalid(args):
    with pytest.raises(ValueError):
        numpy_range(*args)


def test_linspace_includes_both_ends():
    p = numpy_linspace(0.001, 0.1, 5)
    assert p.values == (0.001, 0.02575, 0.0505, 0.07525, 0.1)
    assert p.kind == "linspace" and not p.log_axis
    assert numpy_linspace(3, 7, 1).values == (3.0,)
    assert numpy_linspace(1, 0, 3).values == (1.0, 0.5, 0.0)


def test_logspace_start_and_stop_are_exponents():
    assert numpy_logspace(-3, -1, 3).values == (0.001, 0.01, 0.1)
    assert numpy_logspace(0, 3, 4, base=2).values == (1.0, 2.0, 4.0, 8.0)
    assert numpy_logspace(0, 2, 3, base=math.e).values == pytest.approx((1, math.e, math.e ** 2))
    # Polyaxon's docs' mistake: 0.01:0.1 are exponents, so the values are near 1.
    small = numpy_logspace(0.01, 0.1, 5).values
    assert small[0] == pytest.approx(10 ** 0.01) and small[-1] == pytest.approx(10 ** 0.1)
    assert numpy_logspace(-3, -1, 3).log_axis


@pytest.mark.parametrize("base", [-2, 0, 1])
def test_logspace_bad_base(base):
    with pytest.raises(ValueError, match="base"):
        numpy_logspace(0, 2, 3, base=base)


def test_geomspace_real_end_points():
    p = numpy_geomspace(0.001, 0.1, 3)
    assert p.values == (0.001, 0.01, 0.1)
    assert p.log_axis
    p = numpy_geomspace(1, 1000, 4)
    assert p.values == (1.0, 10.0, 100.0, 1000.0)
    neg = numpy_geomspace(-1, -100, 3)
    assert neg.values == (-1.0, -10.0, -100.0)
    assert not neg.log_axis


@pytest.mark.parametrize("args", [(0, 1, 3), (1, 0, 3), (-1, 1, 3), (1, 10, 0)])
def test_geomspace_invalid(args):
    with pytest.raises(ValueError):
        numpy_geomspace(*args)


def test_discrete_validation():
    with pytest.raises(ValueError):
        Discrete(())
    with pytest.raises(ValueError):
        Discrete((1, 2), probabilities=(1.0,))


# ------------------------------------------------------------------------- distributions


def test_uniform_samples_in_bounds_and_match_numpy():
    p = Uniform(-2, 3)
    r1, r2 = rng(5), rng(5)
    for _ in range(100):
        x = p.sample(r1)
        assert -2 <= x <= 3
        assert x == pytest.approx(r2.uniform(-2, 3), rel=1e-11, abs=1e-12)


def test_loguniform_is_exp_of_uniform():
    low, high = math.log(1e-4), math.log(1e-1)
    p = Uniform(low, high, log=True, kind="loguniform")
    r1, r2 = rng(1), rng(1)
    xs = []
    for _ in range(200):
        x = p.sample(r1)
        assert x == pytest.approx(math.exp(r2.uniform(low, high)), rel=1e-11)
        xs.append(x)
    assert 1e-4 <= min(xs) and max(xs) <= 1e-1
    # log-uniform: the median is the geometric mean of the bounds (loose)
    assert 10 ** -3.0 < float(np.median(xs)) < 10 ** -2.0
    assert p.bounds() == pytest.approx((1e-4, 1e-1))


def test_loguniform_bounds_are_natural_logs_not_values():
    p = Uniform(0.001, 0.1, log=True, kind="loguniform")
    xs = [p.sample(rng(s)) for s in range(20)]
    assert all(math.exp(0.001) <= x <= math.exp(0.1) for x in xs)  # ~1.001..1.105, not 0.001..0.1


def test_quniform_rounds_to_multiples_of_q():
    p = Uniform(0, 10, q=2.5, kind="quniform")
    r1, r2 = rng(2), rng(2)
    seen = set()
    for _ in range(300):
        x = p.sample(r1)
        assert x == round(r2.uniform(0, 10) / 2.5) * 2.5
        seen.add(x)
    assert seen == {0.0, 2.5, 5.0, 7.5, 10.0}


def test_qloguniform_rounds_after_exp():
    low, high = math.log(1), math.log(1000)
    p = Uniform(low, high, q=10, log=True, kind="qloguniform")
    r1, r2 = rng(3), rng(3)
    for _ in range(100):
        x = p.sample(r1)
        assert x == round(math.exp(r2.uniform(low, high)) / 10) * 10
        assert x % 10 == 0


def test_normal_and_qnormal_match_numpy():
    p, q = Normal(3, 2), Normal(3, 2, q=0.5, kind="qnormal")
    r1, r2 = rng(4), rng(4)
    for _ in range(100):
        assert p.sample(r1) == pytest.approx(r2.normal(3, 2), rel=1e-11, abs=1e-12)
    r1, r2 = rng(7), rng(7)
    for _ in range(100):
        x = q.sample(r1)
        assert x == pytest.approx(round(r2.normal(3, 2) / 0.5) * 0.5, abs=1e-12)
        assert x / 0.5 == round(x / 0.5)


def test_lognormal_is_exp_of_normal_and_q_rounds():
    p = Normal(0, 1, log=True, kind="lognormal")
    q = Normal(1, 0.5, q=0.5, log=True, kind="qlognormal")
    r1, r2 = rng(8), rng(8)
    for _ in range(100):
        x = p.sample(r1)
        assert x > 0
        assert x == pytest.approx(math.exp(r2.normal(0, 1)), rel=1e-11)
    r1, r2 = rng(9), rng(9)
    for _ in range(100):
        x = q.sample(r1)
        # Polyaxon 0.5.6 ignored q for qlognormal; hpc-tune rounds.
        assert x == pytest.approx(round(math.exp(r2.normal(1, 0.5)) / 0.5) * 0.5, abs=1e-12)
        assert (x / 0.5) == round(x / 0.5)


@pytest.mark.parametrize("make", [
    lambda: Uniform(1, 1),
    lambda: Uniform(2, 1),
    lambda: Uniform(0, 1, q=0),
    lambda: Uniform(0, 1, q=-1),
    lambda: Uniform(0, 800, log=True),
    lambda: Normal(0, 0),
    lambda: Normal(0, -1),
    lambda: Normal(0, 1, q=0),
])
def test_invalid_distributions(make):
    with pytest.raises(ValueError):
        make()


def test_pvalues_sampling_follows_weights():
    p = Discrete(("a", "b", "c"), probabilities=(0.7, 0.2, 0.1), kind="pvalues")
    r = rng(11)
    draws = [p.sample(r) for _ in range(4000)]
    freq = {v: draws.count(v) / len(draws) for v in "abc"}
    assert freq["a"] == pytest.approx(0.7, abs=0.04)
    assert freq["b"] == pytest.approx(0.2, abs=0.04)
    assert freq["c"] == pytest.approx(0.1, abs=0.04)


def test_zero_probability_value_is_never_drawn_or_decoded():
    p = Discrete(("x", "never"), probabilities=(1.0, 0.0), kind="pvalues")
    r = rng(0)
    assert {p.sample(r) for _ in range(500)} == {"x"}
    assert p.support == ("x",)
    assert p.decode([0.0, 1.0]) == "x"
    assert Space({"p": p}).size() == 1


# ------------------------------------------------------------------------------- grids


def test_grid_order_last_key_fastest():
    space = Space({
        "a": Discrete((1, 2)),
        "b": Discrete(("x", "y", "z")),
        "c": Discrete((True, False)),
    })
    grid = list(space.grid())
    assert len(grid) == space.grid_size() == 12
    assert grid[0] == {"a": 1, "b": "x", "c": True}
    assert grid[1] == {"a": 1, "b": "x", "c": False}
    assert grid[2] == {"a": 1, "b": "y", "c": True}
    assert grid[6] == {"a": 2, "b": "x", "c": True}
    assert grid[-1] == {"a": 2, "b": "z", "c": False}
    assert [list(g) for g in grid] == [["a", "b", "c"]] * 12  # key order kept
    assert len({params_key(g) for g in grid}) == 12


def test_grid_sizes():
    space = Space({"lr": numpy_linspace(0.001, 0.1, 5), "d": Discrete((0.25, 0.3)), "r": numpy_range(0, 3, 1)})
    assert space.grid_size() == 30
    assert space.size() == 30
    assert len(list(space.grid())) == 30
    assert Space({"x": Discrete((7,))}).grid_size() == 1
    assert list(Space({"x": Discrete((7,))}).grid()) == [{"x": 7}]
    assert list(Space({}).grid()) == []


def test_grid_refuses_distributions_and_weights():
    with pytest.raises(TypeError, match="distribution"):
        Uniform(0, 1).grid_values()
    with pytest.raises(TypeError, match="weighted"):
        Discrete(("a", "b"), probabilities=(0.5, 0.5), kind="pvalues").grid_values()
    with pytest.raises(TypeError):
        list(Space({"x": Discrete((1, 2)), "y": Normal(0, 1)}).grid())


def test_space_size_is_none_with_a_distribution():
    assert Space({"x": Discrete((1, 2)), "y": Uniform(0, 1, q=0.5)}).size() is None
    assert not Space({"y": Uniform(0, 1)}).is_discrete


# ---------------------------------------------------------------------- encode / decode


def test_uniform_encoding_linear():
    p = Uniform(-1, 3)
    assert p.encode(-1) == [0.0]
    assert p.encode(3) == [1.0]
    assert p.encode(1) == [0.5]
    assert p.decode([0.25]) == 0.0
    assert p.encode(100) == [1.0] and p.encode(-100) == [0.0]  # clipped
    for x in (-1, -0.3, 0.7, 2.9):
        assert p.decode(p.encode(x)) == pytest.approx(x)


def test_loguniform_encoding_uses_the_log_axis():
    p = Uniform(math.log(1e-4), math.log(1.0), log=True, kind="loguniform")
    assert p.encode(1e-2) == [pytest.approx(0.5)]
    assert p.encode(1e-4) == [pytest.approx(0.0)]
    assert p.decode([0.75]) == pytest.approx(1e-1)
    for x in (2e-4, 3e-3, 0.5):
        assert p.decode(p.encode(x)) == pytest.approx(x, rel=1e-9)


def test_discrete_numeric_axis_linear_and_log():
    lin = Discrete((1, 2, 3, 5), kind="values")
    assert lin.n_dims == 1
    assert lin.encode(1) == [0.0] and lin.encode(5) == [1.0] and lin.encode(3) == [0.5]
    assert lin.decode([0.6]) == 3
    log = numpy_logspace(-3, -1, 3)
    assert log.encode(0.01) == [pytest.approx(0.5)]
    assert log.decode([0.4]) == 0.01
    assert log.decode([0.8]) == 0.1
    for v in log.values:
        assert log.decode(log.encode(v)) == v
    assert Discrete((4,)).encode(4) == [0.5]


def test_discrete_one_hot_for_non_numbers():
    p = Discrete(("relu", "tanh", "sigmoid"))
    assert p.n_dims == 3
    assert p.encode("tanh") == [0.0, 1.0, 0.0]
    assert p.decode([0.1, 0.2, 0.9]) == "sigmoid"
    for v in p.values:
        assert p.decode(p.encode(v)) == v
    mixed = Discrete((1, "auto", None))
    assert mixed.n_dims == 3
    assert mixed.decode(mixed.encode(None)) is None
    with pytest.raises(ValueError):
        p.encode("elu")


def test_bool_values_are_one_hot_not_numbers():
    p = Discrete((True, False))
    assert p.n_dims == 2
    assert p.encode(False) == [0.0, 1.0]
    assert p.contains(True) and not p.contains(1)


def test_normal_encoding_is_the_cdf():
    p = Normal(2, 3)
    assert p.encode(2) == [pytest.approx(0.5)]
    assert p.encode(5)[0] == pytest.approx(stats.norm.cdf(1))
    assert p.decode([stats.norm.cdf(-1)]) == pytest.approx(-1)
    assert 0 < p.encode(1e9)[0] < 1 and 0 < p.encode(-1e9)[0] < 1
    assert math.isfinite(p.decode([0.0])) and math.isfinite(p.decode([1.0]))
    ln = Normal(0, 1, log=True, kind="lognormal")
    assert ln.encode(1.0) == [pytest.approx(0.5)]
    assert ln.decode([stats.norm.cdf(1)]) == pytest.approx(math.e)
    for x in (0.3, 1.7, 4.0):
        assert ln.decode(ln.encode(x)) == pytest.approx(x, rel=1e-6)


def test_space_encode_decode_round_trip():
    space = Space({
        "lr": Uniform(math.log(1e-5), math.log(1e-1), log=True, kind="loguniform"),
        "act": Discrete(("relu", "tanh")),
        "layers": numpy_range(1, 5, 1),
        "wd": Normal(0, 1),
        "bs": numpy_geomspace(16, 256, 5),
    })
    assert space.n_dims == 1 + 2 + 1 + 1 + 1
    params = {"lr": 1e-3, "act": "tanh", "layers": 3, "wd": 0.5, "bs": 64}
    vec = space.encode(params)
    assert vec.shape == (6,)
    assert np.all((vec >= 0) & (vec <= 1))
    back = space.decode(vec)
    assert list(back) == list(space)
    assert back["act"] == "tanh" and back["layers"] == 3 and back["bs"] == 64
    assert back["lr"] == pytest.approx(1e-3) and back["wd"] == pytest.approx(0.5)
    assert space.contains(back)
    assert not space.contains({**back, "extra": 1})
    assert not space.contains({k: v for k, v in back.items() if k != "lr"})


def test_space_equality_distinguishes_value_types():
    # 1 == 1.0 == True in Python; the spaces (and cached plans) must not be confused.
    ints = Space({"x": Discrete((1, 0))})
    bools = Space({"x": Discrete((True, False))})
    floats = Space({"x": Discrete((1.0, 0.0))})
    assert ints != bools and ints != floats and bools != floats
    assert ints == Space({"x": Discrete((1, 0))})
    assert hash(ints) == hash(Space({"x": Discrete((1, 0))}))
    assert Space({"x": Uniform(0, 1)}) == Space({"x": Uniform(0, 1)})
    assert Space({"x": Uniform(0, 1)}) != Space({"y": Uniform(0, 1)})


def test_clean_number_and_params_key():
    assert clean_number(np.float64(0.1) * 3) == 0.3
    assert clean_number(np.int64(3)) == 3 and type(clean_number(np.int64(3))) is int
    assert clean_number(-0.0) == 0.0 and str(clean_number(-0.0)) == "0.0"
    assert clean_number(np.bool_(True)) is True
    assert clean_number("relu") == "relu"
    assert params_key({"a": 1, "b": "x"}) == params_key({"b": "x", "a": 1.0})
    assert params_key({"a": 1}) != params_key({"a": 2})


# ------------------------------------------------------------------------ property tests


finite = dict(allow_nan=False, allow_infinity=False)


@st.composite
def discrete_params(draw):
    kind = draw(st.sampled_from(["values", "pvalues", "range", "linspace", "logspace", "geomspace"]))
    if kind in ("values", "pvalues"):
        elems = st.one_of(st.integers(-1000, 1000), st.floats(-1e3, 1e3, **finite).map(lambda x: round(x, 3)),
                          st.text(min_size=1, max_size=5), st.booleans())
        values = draw(st.lists(elems, min_size=1, max_size=6, unique_by=lambda v: (type(v), v)))
        if kind == "values":
            return Discrete(tuple(clean_number(v) for v in values))
        weights = draw(st.lists(st.sampled_from([0.0, 0.1, 0.5, 1.0, 3.0]), min_size=len(values),
                                max_size=len(values)).filter(lambda w: sum(w) > 0))
        total = sum(weights)
        return Discrete(tuple(clean_number(v) for v in values), probabilities=tuple(w / total for w in weights),
                        kind="pvalues")
    if kind == "range":
        start = draw(st.floats(-100, 100, **finite))
        step = draw(st.floats(0.01, 50, **finite)) * draw(st.sampled_from([1, -1]))
        count = draw(st.integers(1, 40))
        return numpy_range(start, start + step * (count - 0.5), step)
    num = draw(st.integers(1, 20))
    if kind == "linspace":
        return numpy_linspace(draw(st.floats(-1e3, 1e3, **finite)), draw(st.floats(-1e3, 1e3, **finite)), num)
    if kind == "logspace":
        base = draw(st.sampled_from([2.0, math.e, 10.0, 0.5]))
        return numpy_logspace(draw(st.floats(-8, 8, **finite)), draw(st.floats(-8, 8, **finite)), num, base)
    sign = draw(st.sampled_from([1, -1]))
    a, b = draw(st.floats(1e-4, 1e4, **finite)), draw(st.floats(1e-4, 1e4, **finite))
    return numpy_geomspace(sign * a, sign * b, num)


@st.composite
def continuous_params(draw):
    kind = draw(st.sampled_from(["uniform", "quniform", "loguniform", "qloguniform",
                                 "normal", "qnormal", "lognormal", "qlognormal"]))
    q = draw(st.sampled_from([0.01, 0.1, 0.25, 1.0, 5.0])) if kind.startswith("q") else None
    if "uniform" in kind:
        if "log" in kind:
            low = draw(st.floats(-12, 6, **finite))
            width = draw(st.floats(1e-3, 8, **finite))
        else:
            low = draw(st.floats(-1e3, 1e3, **finite))
            width = draw(st.floats(1e-3, 1e3, **finite))
        return Uniform(low, low + width, q=q, log="log" in kind, kind=kind)
    if "log" in kind:
        return Normal(draw(st.floats(-5, 5, **finite)), draw(st.floats(0.01, 2, **finite)), q=q, log=True,
                      kind=kind)
    return Normal(draw(st.floats(-100, 100, **finite)), draw(st.floats(0.01, 50, **finite)), q=q, kind=kind)


any_param = st.one_of(discrete_params(), continuous_params())


@PROPS
@given(param=any_param, seed=st.integers(0, 2**32 - 1))
def test_samples_lie_in_the_support(param, seed):
    r = rng(seed)
    for _ in range(5):
        x = param.sample(r)
        assert param.contains(x), (param, x)
        if isinstance(param, Discrete):
            assert x in param.support or any(x == s and type(x) is type(s) for s in param.support)


@PROPS
@given(param=any_param, data=st.data())
def test_decode_of_any_unit_vector_lies_in_the_support(param, data):
    vec = data.draw(st.lists(st.floats(0, 1, **finite), min_size=param.n_dims, max_size=param.n_dims))
    x = param.decode(vec)
    assert param.contains(x), (param, vec, x)


@PROPS
@given(param=any_param, seed=st.integers(0, 2**32 - 1))
def test_encode_of_a_sample_is_in_the_unit_cube(param, seed):
    x = param.sample(rng(seed))
    vec = param.encode(x)
    assert len(vec) == param.n_dims
    assert all(0.0 <= u <= 1.0 for u in vec), (param, x, vec)


@PROPS
@given(param=discrete_params())
def test_discrete_decode_inverts_encode_on_the_support(param):
    if param.numeric:
        axis = [param._fwd(w) for w in param.values]
        span = max(axis) - min(axis)
    for i, v in enumerate(param.values):
        if param.probabilities is not None and param.probabilities[i] == 0:
            continue  # never drawn, never decoded
        if param.numeric and any(j != i and abs(axis[j] - axis[i]) <= 1e-9 * span for j in range(len(axis))):
            continue  # values (nearly) equal on the axis cannot be told apart
        assert param.decode(param.encode(v)) == v


@PROPS
@given(params=st.lists(any_param, min_size=1, max_size=4), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_space_decode_of_any_unit_vector_is_in_the_space(params, seed, data):
    space = Space({f"p{i}": p for i, p in enumerate(params)})
    sample = space.sample(rng(seed))
    assert space.contains(sample)
    vec = data.draw(st.lists(st.floats(0, 1, **finite), min_size=space.n_dims, max_size=space.n_dims))
    assert space.contains(space.decode(vec))
    enc = space.encode(sample)
    assert enc.shape == (space.n_dims,) and np.all((enc >= 0) & (enc <= 1))
