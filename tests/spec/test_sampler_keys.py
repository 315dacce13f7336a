"""`sampler: model` and its keys in `hyperband` / `asha`; `sampler: kde` and BOHB's keys."""
import textwrap

import pytest

from hpc_tune.errors import SpecError
from hpc_tune.spec import load_spec
from hpc_tune.spec.model import ModelSamplerConfig, SamplerConfig


def study(tmp_path, algorithm_block: str) -> str:
    text = textwrap.dedent("""
        hptuning:
          concurrency: 2
          matrix:
            lr: {loguniform: [-9, -2]}
            opt: {values: [adam, sgd]}
        """).lstrip("\n") + textwrap.indent(textwrap.dedent(algorithm_block).strip("\n"), "  ") + "\n" + \
        "run:\n  cmd: python train.py --lr={{ lr }} --opt={{ opt }} --epochs={{ epochs }}\n"
    path = tmp_path / "study.yml"
    path.write_text(text)
    return str(path)


HYPERBAND = """
hyperband:
  max_iter: 27
  eta: 3
  resource: {name: epochs, type: int}
  metric: {name: loss, optimization: minimize}
"""

ASHA = """
asha:
  max_resource: 27
  n_experiments: 20
  resource: {name: epochs, type: int}
  metric: {name: loss, optimization: minimize}
"""


def test_model_sampler_defaults(tmp_path):
    spec = load_spec(study(tmp_path, HYPERBAND + "  sampler: model\n"))
    assert spec.algorithm.sampler == SamplerConfig(kind="model", model=ModelSamplerConfig())
    assert spec.algorithm.sampler.model.random_fraction == pytest.approx(1 / 3)  # BOHB's


@pytest.mark.parametrize("block", [HYPERBAND, ASHA])
def test_model_sampler_keys(tmp_path, block):
    spec = load_spec(study(tmp_path, block + "  sampler: model\n  random_fraction: 0.5\n  min_points_in_model: 6\n"))
    assert spec.algorithm.sampler.model == ModelSamplerConfig(random_fraction=0.5, min_points_in_model=6)


def test_kde_sampler_keys_stay_kde(tmp_path):
    spec = load_spec(study(tmp_path, HYPERBAND + "  sampler: kde\n  random_fraction: 0.5\n  num_samples: 32\n"))
    sampler = spec.algorithm.sampler
    assert (sampler.kind, sampler.random_fraction, sampler.num_samples, sampler.model) == ("kde", 0.5, 32, None)


def test_kde_keys_without_a_kde_sampler_are_refused(tmp_path):
    path, err = _error(tmp_path, HYPERBAND + "  top_n_percent: 10\n")
    assert (err.file, err.line, err.keypath) == (path, 11, "hptuning.hyperband.top_n_percent")
    assert "needs `sampler: kde`" in str(err)


def _error(tmp_path, block):
    path = study(tmp_path, block)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return path, info.value


def test_a_kde_only_key_with_the_model_sampler_is_refused_where_it_stands(tmp_path):
    path, err = _error(tmp_path, HYPERBAND + "  sampler: model\n  num_samples: 32\n")
    assert (err.file, err.line, err.keypath) == (path, 12, "hptuning.hyperband.num_samples")
    assert "needs `sampler: kde`" in str(err) and "takes min_points_in_model and random_fraction" in str(err)


@pytest.mark.parametrize("line, expected", [
    ("random_fraction: 1.5", "expected a probability in [0, 1]"),
    ("random_fraction: -0.1", "random_fraction"),
    ("min_points_in_model: 0", "min_points_in_model"),
    ("min_points_in_model: 2.5", "min_points_in_model"),
])
def test_bad_model_keys_are_located(tmp_path, line, expected):
    path, err = _error(tmp_path, ASHA + "  sampler: model\n  " + line + "\n")
    assert (err.file, err.line) == (path, 12)
    assert err.keypath == "hptuning.asha." + line.split(":")[0]
    assert expected in str(err)


def test_plan_shows_the_model_samplers_settings(tmp_path):
    from hpc_tune.plan import format_plan, make_plan

    spec = load_spec(study(tmp_path, ASHA + "  sampler: model\n  random_fraction: 0.3\n"))
    plan = make_plan(spec, seed=0)
    assert plan["sampler"] == {"kind": "model", "random_fraction": 0.3, "min_points_in_model": None}
    assert "sampler:      model (random_fraction=0.3, min_points_in_model=parameters + 1)" in format_plan(plan)


def test_the_example_of_docs_samplers_md_loads(tmp_path):
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "samplers.md").read_text()
    (block,) = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    path = tmp_path / "study.yml"
    path.write_text(block + "run:\n  cmd: python t.py --lr={{ lr }} --opt={{ optimizer }} --epochs={{ epochs }}\n")
    spec = load_spec(str(path))
    assert spec.algorithm.sampler == SamplerConfig(kind="model", model=ModelSamplerConfig(random_fraction=0.25))
