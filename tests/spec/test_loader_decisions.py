"""Decisions taken where Polyaxon was silent or wrong."""
import pytest

from hpc_tune.errors import SpecError
from hpc_tune.spec import spec_from_dict


def study(matrix):
    return {"hptuning": {"random_search": {"n_experiments": 2}, "matrix": matrix},
            "run": {"cmd": "echo " + " ".join(f"{{{{ {k} }}}}" for k in matrix)}}


def test_duplicate_values_are_counted_once_with_a_warning():
    spec = spec_from_dict(study({"a": {"values": [1, 1, 2, "x", "x"]}}))
    assert spec.space["a"].values == (1, 2, "x")
    assert sum("listed twice" in w for w in spec.warnings) == 2


def test_one_and_two_number_ranges_are_errors_not_value_lists():
    for bad in ([0, 5], [3]):
        with pytest.raises(SpecError, match=r"range takes 3 numbers"):
            spec_from_dict(study({"a": {"range": bad}}))


def test_four_number_range_is_read_as_values_with_a_warning():
    spec = spec_from_dict(study({"a": {"range": [3, 4, 5, 6]}}))
    assert spec.space["a"].values == (3, 4, 5, 6)
    assert any("read as `values" in w for w in spec.warnings)


def test_lognormal_that_would_overflow_is_refused():
    with pytest.raises(SpecError, match="overflows"):
        spec_from_dict(study({"a": {"lognormal": [700, 10]}}))


def test_hyperband_with_absurd_bracket_counts_is_refused():
    data = {"hptuning": {"hyperband": {"max_iter": 1000, "eta": 1.01, "resource": {"name": "r"},
                                       "metric": {"name": "loss"}},
                         "matrix": {"a": {"uniform": [0, 1]}}},
            "run": {"cmd": "echo {{ a }} {{ r }}"}}
    with pytest.raises(SpecError, match="brackets"):
        spec_from_dict(data)


def test_an_absurd_number_of_trials_is_refused():
    with pytest.raises(SpecError, match="more than hpc-tune plans"):
        spec_from_dict({"hptuning": {"random_search": {"n_experiments": 10**9},
                                     "matrix": {"a": {"uniform": [0, 1]}}},
                        "run": {"cmd": "echo {{ a }}"}})
