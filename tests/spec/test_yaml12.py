"""YAML reading: numbers the YAML 1.2 way, line numbers for every key and item."""
import math

import pytest
import yaml

from hpc_tune.errors import SpecError
from hpc_tune.spec.yaml12 import load_yaml


def value(text):
    data, _ = load_yaml(f"a: {text}\n", "f.yml")
    return data["a"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1e-3", 0.001),
        ("1E5", 100000.0),
        ("-2.5e-4", -0.00025),
        (".5", 0.5),
        ("-.5", -0.5),
        ("1e3", 1000.0),
        ("+1.5e+2", 150.0),
        ("1.", 1.0),
        ("0.001", 0.001),
    ],
)
def test_scientific_and_dotted_numbers_are_floats(text, expected):
    v = value(text)
    assert type(v) is float
    assert v == expected


def test_pyyaml_itself_reads_1e_minus_3_as_a_string():
    # The reason this module exists: plain PyYAML (YAML 1.1) keeps `1e-3` a string.
    assert yaml.safe_load("a: 1e-3")["a"] == "1e-3"


@pytest.mark.parametrize("text, expected", [("3", 3), ("-7", -7), ("0", 0), ("+4", 4), ("128", 128)])
def test_ints_stay_ints(text, expected):
    v = value(text)
    assert type(v) is int
    assert v == expected


@pytest.mark.parametrize(
    "text",
    ["relu", "1e", "e3", "0.001:0.1:5", "1.5:2", "v1.2", "'1e-3'", '"42"'],
)
def test_strings_stay_strings(text):
    v = value(text)
    assert isinstance(v, str)
    assert v == text.strip("'\"")


@pytest.mark.parametrize("text", ["1:5", "1:10:1", "2:00:00", "190:20:30", "0:1", "10:600:50"])
def test_colon_separated_numbers_are_not_base_60(text):
    # YAML 1.1 reads `1:5` as 65 and `2:00:00` as 7200 (base 60); numeric specs and
    # Slurm times written that way must reach the loader as the string typed.
    assert value(text) == text


@pytest.mark.parametrize("text, check", [
    (".inf", lambda v: v == math.inf),
    ("-.inf", lambda v: v == -math.inf),
    (".NaN", lambda v: math.isnan(v)),
])
def test_yaml_special_floats(text, check):
    v = value(text)
    assert type(v) is float and check(v)


def test_booleans_and_null_unchanged():
    data, _ = load_yaml("a: true\nb: False\nc: null\nd: ~\n", "f.yml")
    assert data == {"a": True, "b": False, "c": None, "d": None}


def test_float_lists_in_flow_and_block_style():
    data, _ = load_yaml("values: [1e-3, 1e-6, 0.1, 2]\nblock:\n  - 1e-2\n  - 5\n", "f.yml")
    assert data["values"] == [0.001, 1e-06, 0.1, 2]
    assert [type(v) for v in data["values"]] == [float, float, float, int]
    assert data["block"] == [0.01, 5]


def test_lines_are_recorded_for_keys_and_items():
    text = (
        "hptuning:\n"            # 1
        "  concurrency: 2\n"      # 2
        "  matrix:\n"             # 3
        "    lr:\n"               # 4
        "      values:\n"         # 5
        "        - 1e-3\n"        # 6
        "        - 1e-2\n"        # 7
        "run:\n"                  # 8
        "  cmd: python x.py\n"    # 9
    )
    data, lines = load_yaml(text, "f.yml")
    assert data["hptuning"]["matrix"]["lr"]["values"] == [0.001, 0.01]
    assert lines[("hptuning",)] == 1
    assert lines[("hptuning", "concurrency")] == 2
    assert lines[("hptuning", "matrix", "lr")] == 4
    assert lines[("hptuning", "matrix", "lr", "values")] == 5
    assert lines[("hptuning", "matrix", "lr", "values", 0)] == 6
    assert lines[("hptuning", "matrix", "lr", "values", 1)] == 7
    assert lines[("run", "cmd")] == 9


def test_empty_document_is_none():
    data, lines = load_yaml("", "f.yml")
    assert data is None and lines == {}


def test_invalid_yaml_names_file_and_line():
    with pytest.raises(SpecError) as info:
        load_yaml("a:\n  b: [1, 2\n  c: 3\nd: 4\n", "bad.yml")
    err = info.value
    assert err.file == "bad.yml"
    assert err.line is not None and 2 <= err.line <= 4
    assert "not valid YAML" in str(err)
    assert str(err).startswith(f"bad.yml:{err.line}: ")


def test_duplicate_key_names_line_and_key_path():
    with pytest.raises(SpecError) as info:
        load_yaml("m:\n  lr: 1\n  bs: 2\n  lr: 3\n", "dup.yml")
    err = info.value
    assert err.line == 4
    assert err.keypath == "m.lr"
    assert "appears twice" in err.message


def test_anchors_and_merge_keys_still_work():
    data, _ = load_yaml("base: &b {x: 1e-3}\nother:\n  <<: *b\n  y: 2\n", "f.yml")
    assert data["other"] == {"x": 0.001, "y": 2}
