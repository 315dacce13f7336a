"""The docs inside the repository: every link and path leads to a file of the repository;
docs/dialect.md documents every parameter kind and algorithm the loader reads, and its
examples load; the README's copy of configs/hyperband.yml is that file."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from hpc_tune.errors import SpecError
from hpc_tune.spec import build_spec
from hpc_tune.spec.loader import V0_ALGORITHMS, V1_KINDS
from hpc_tune.spec.params import ALL_KINDS, parse_param
from hpc_tune.spec.source import Section, Source
from hpc_tune.spec.yaml12 import load_yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md")), REPO_ROOT / "benchmarks" / "README.md"]
DIALECT = (REPO_ROOT / "docs" / "dialect.md").read_text()
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_links_and_paths_stay_inside_the_repository(doc):
    text = doc.read_text()
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        resolved = (doc.parent / target).resolve()
        assert resolved.is_relative_to(REPO_ROOT), f"{doc.name}: {target} leads outside the repository"
        assert resolved.exists(), f"{doc.name}: {target} does not exist"
    for machine_path in ("/work/", "/root/", "../shared"):
        assert machine_path not in text, f"{doc.name} names {machine_path}"


def test_every_kind_and_algorithm_is_documented():
    for kind in ALL_KINDS:
        assert f"`{kind}`" in DIALECT, kind
    for name in V0_ALGORITHMS + V1_KINDS:
        assert f"`{name}:`" in DIALECT or f"`kind: {name}`" in DIALECT or f"`{name}`" in DIALECT, name
    for section in ("declarations", "params", "inputs", "run", "pathRef", "environment.resources.gpu", "slurm",
                    "early_stopping", "concurrency", "seed", "metric", "urlRef"):
        assert f"`{section}" in DIALECT, section
    for key in ("partition", "time", "mem", "cpus", "gpus", "account", "qos", "extra", "max_retries"):
        assert re.search(rf"^\| [^|]*`{key}`", DIALECT, re.M), key


def test_parameter_examples_of_the_table_load():
    rows = [line for line in DIALECT.splitlines() if any(line.startswith(f"| `{k}`") for k in ALL_KINDS)]
    examples = [m for row in rows for m in re.findall(r"`(\w+: \{[^`]*\})`", row)]
    assert len(examples) >= 14
    for example in examples:
        ((name, definition),) = load_yaml(example, "dialect.md")[0].items()  # YAML 1.2, as study files
        warnings: list = []
        parse_param(Section(definition, ("matrix", name), Source("dialect.md", {})), warnings)


def yaml_blocks():
    return re.findall(r"```yaml\n(.*?)```", DIALECT, re.S)


def test_study_examples_load():
    loaded = 0
    for block in yaml_blocks():
        try:
            data = load_yaml(block, "dialect.md")[0]
        except SpecError:
            continue  # two files side by side
        if not isinstance(data, dict) or not ({"hptuning", "matrix", "settings"} & set(data)):
            continue
        search = data.get("hptuning") or data.get("settings") or data.get("matrix")
        if search.get("kind") == "iterative":
            continue  # its module is the user's
        data.setdefault("run", {"cmd": "echo " + " ".join("{{ %s }}" % n for n in _names(data))})
        build_spec(data, Source("dialect.md", {}), base_dir=str(REPO_ROOT))
        loaded += 1
    assert loaded >= 9


def _names(data):
    search = data.get("hptuning") or data.get("matrix")
    matrix = search.get("matrix") or search.get("params") or {}
    names = list(matrix)
    for block in ("hyperband", "asha", "bohb", "pbt"):
        if block in search:
            names.append(search[block]["resource"]["name"])
    return names


def test_readme_shows_the_hyperband_config_as_it_is():
    readme = (REPO_ROOT / "README.md").read_text()
    shown = re.search(r"```yaml\n# configs/hyperband.yml\n(.*?)```", readme, re.S).group(1)
    config = "".join(line + "\n" for line in (REPO_ROOT / "configs" / "hyperband.yml").read_text().splitlines()
                     if not line.startswith("#"))
    assert shown == config
