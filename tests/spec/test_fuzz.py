"""Fuzzing the study-file loader with mutated copies of the real polyaxonfiles corpus.

Every mutated file must either load into a ``Spec`` or fail with one ``UserError``
(normally a ``SpecError``) whose message is non-empty and starts with the file's
path; any other exception is a bug. Files that load must also plan
(``make_plan``) or fail with a ``UserError``.

Mutations come at two levels:

* text: delete, duplicate or swap lines, change indentation, insert tokens (YAML
  punctuation, tabs, unicode, invalid UTF-8, tags, anchors, very long numbers,
  ``nan``, ``.inf``, ``1e999``...), nest deeply, truncate;
* structure: parse the file, then replace values at random key paths by values of
  other types, delete keys, add unknown keys, rename keys and kinds, copy or wrap
  subtrees, and dump it back with ``yaml.safe_dump``.

Both levels draw through one small ``Chooser`` interface, so that Hypothesis drives
(and shrinks) the in-process tests, and a seeded ``random.Random`` makes the sample
of files that goes through the real command line.
"""
from __future__ import annotations

import copy
import math
import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import pytest
import yaml
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from hpc_tune.errors import UserError
from hpc_tune.plan import format_plan, make_plan
from hpc_tune.spec import Spec, load_spec
from hpc_tune.spec.model import GridConfig, HyperbandConfig, MappingConfig, RandomConfig
from hpc_tune.spec.yaml12 import load_yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS = REPO_ROOT / "tests" / "data" / "polyaxonfiles"  # public files; origins in its sources.txt


def _corpus() -> List[Tuple[str, str]]:
    if not CORPUS.is_dir():
        return []
    return [(p.name, p.read_text(encoding="utf-8")) for p in sorted(CORPUS.iterdir())
            if p.suffix in (".yml", ".yaml")]


CORPUS_FILES = _corpus()
pytestmark = pytest.mark.skipif(
    not CORPUS_FILES, reason=f"the polyaxonfiles corpus is missing: no *.yml/*.yaml in {CORPUS}")


def _parsed(text: str) -> Any:
    try:
        return load_yaml(text, "corpus.yml")[0]
    except UserError:  # pragma: no cover - the corpus is valid YAML
        return None


CORPUS_DATA = [(name, data) for name, data in ((n, _parsed(t)) for n, t in CORPUS_FILES) if isinstance(data, dict)]

# Examples per test: 600 text-level + 600 structure-level = 1200 in-process cases
# (plus CLI_SAMPLE files through the real command line). FUZZ_EXAMPLES=10000 in the
# environment (per test: 20,000 cases) shakes out rarer crashes locally.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "600"))
CLI_SAMPLE = 50
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                HealthCheck.filter_too_much])

# Plans bigger than this are skipped (a grid of 10^12 points is valid but slow to list).
MAX_PLANNED = 20_000


# ------------------------------------------------------------------------ choosers


class Chooser:
    """What the mutators may ask for: an integer in a range, or one item of a list."""

    def integer(self, lo: int, hi: int) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def choice(self, items: Sequence[Any]) -> Any:
        return items[self.integer(0, len(items) - 1)]

    def coin(self, p_true_in_ten: int = 5) -> bool:
        return self.integer(0, 9) < p_true_in_ten


class DrawChooser(Chooser):
    """Hypothesis draws: shrinkable, and reported when a case fails."""

    def __init__(self, data: Any):
        self.data = data

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, hi))

    def choice(self, items: Sequence[Any]) -> Any:
        return self.data.draw(st.sampled_from(items))


class RandomChooser(Chooser):
    def __init__(self, seed: int):
        self.rnd = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self.rnd.randint(lo, hi)


# ------------------------------------------------------------- text-level mutations

LONG_DIGITS = "9" * 5000  # beyond Python's int-from-string limit (4300 digits)
TOKENS = [
    ":", ": ", "-", "- ", "[", "]", "{", "}", "{{", "}}", "{{ lr }}", "{{ }}", "{{ a.b }}", "{%", "\t", " \t",
    ",", "?", "? ", "|", ">", "#", "'", '"', "&a ", "*a", "<<: *a", "&x [*x]", "!!python/object:os.system ",
    "!!binary ", "!!int ", "!!float ", "!!bool ", "!!timestamp ", "!!set ", "!!omap ", "!!str ", "!!null ",
    "!!map ", "!!seq ", "!local ", "%YAML 1.1\n---\n", "---\n", "\n...\n", "\x00", "\x07", "\x85", "\ufeff",
    "\u2028", "é", "λ", "😀", "日本", "\udcff",  # \udcff is written as the invalid UTF-8 byte 0xff
    LONG_DIGITS, "-" + LONG_DIGITS, "1" + "0" * 400, "0." + "0" * 400 + "1", "1e999", "-1e999", "1e-999",
    "nan", ".nan", "NaN", ".inf", "-.inf", "+.inf", "inf", "0x1F", "0o17", "0b101", "017", "1_000", "1:2:3",
    "1:2", "0:0:0", "1e308:1e308:1", "-1:1:0.000000001", "null", "~", "true", "False", "yes", "0", "-1", "-0",
    "1.5", "1e-3", "''", "[]", "{}", "[[a, 0.5], [b, 0.6]]", "kind: ", "values: ", "uniform: ", "matrix: ",
]
NEST_TOKENS = ["[", "{a: ", "- "]


def _line_index(ch: Chooser, lines: List[str]) -> int:
    return ch.integer(0, max(0, len(lines) - 1))


def _insert_token(ch: Chooser, lines: List[str]) -> None:
    i = _line_index(ch, lines)
    line = lines[i] if lines else ""
    col = ch.integer(0, len(line))
    token = ch.choice(TOKENS)
    if lines:
        lines[i] = line[:col] + token + line[col:]
    else:
        lines.append(token)


def _replace_value(ch: Chooser, lines: List[str]) -> None:
    """Replace what follows the first `: ` (or `- `) of a line with a token."""
    candidates = [i for i, s in enumerate(lines) if ": " in s or s.lstrip().startswith("- ")]
    if not candidates:
        return _insert_token(ch, lines)
    i = ch.choice(candidates)
    s = lines[i]
    cut = s.index(": ") + 2 if ": " in s else s.index("- ") + 2
    lines[i] = s[:cut] + ch.choice(TOKENS)


def _delete_line(ch: Chooser, lines: List[str]) -> None:
    if lines:
        del lines[_line_index(ch, lines)]


def _duplicate_line(ch: Chooser, lines: List[str]) -> None:
    if lines:
        i = _line_index(ch, lines)
        lines.insert(ch.integer(0, len(lines)), lines[i])


def _swap_lines(ch: Chooser, lines: List[str]) -> None:
    if len(lines) > 1:
        i, j = _line_index(ch, lines), _line_index(ch, lines)
        lines[i], lines[j] = lines[j], lines[i]


def _reindent(ch: Chooser, lines: List[str]) -> None:
    if not lines:
        return
    i = _line_index(ch, lines)
    body = lines[i].lstrip(" \t")
    indent = len(lines[i]) - len(body)
    how = ch.integer(0, 3)
    if how == 0:
        lines[i] = " " * max(0, indent + ch.integer(-4, 4)) + body
    elif how == 1:
        lines[i] = "\t" + lines[i]
    elif how == 2:
        lines[i] = body
    else:  # shift a block of lines
        j = min(len(lines), i + ch.integer(1, 8))
        delta = ch.choice([-2, 2, 1, -1])
        for k in range(i, j):
            b = lines[k].lstrip(" ")
            lines[k] = " " * max(0, len(lines[k]) - len(b) + delta) + b


def _nest_deeply(ch: Chooser, lines: List[str]) -> None:
    token = ch.choice(NEST_TOKENS)
    depth = ch.choice([50, 200, 1000, 3000])
    if token == "- ":  # indented block style: 600 levels are already ~360 kB
        depth = min(depth, 600)
        block = "".join("  " * k + "- \n" for k in range(depth)) + "  " * depth + "x"
    else:
        block = token * depth
    lines.insert(_line_index(ch, lines), "deep: " + block if token != "- " else "deep:\n" + block)


def _billion_laughs(ch: Chooser, lines: List[str]) -> None:
    """Aliases whose expansion is exponential: must not hang (PyYAML shares them)."""
    out = ["lol0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for k in range(1, ch.integer(3, 9)):
        out.append(f"lol{k}: &l{k} [" + ", ".join([f"*l{k - 1}"] * 10) + "]")
    at = 1 if lines and lines[0].startswith("---") else 0
    lines[at:at] = out


def _truncate(ch: Chooser, lines: List[str]) -> None:
    text = "\n".join(lines)
    cut = ch.integer(0, len(text))
    lines[:] = text[:cut].split("\n")


# Weighted: value replacements keep the file valid YAML more often, so that more cases
# get past the parser into the loader's own checks.
TEXT_MUTATIONS = [_replace_value] * 5 + [_insert_token] * 2 + [_delete_line] * 2 + [
    _duplicate_line, _swap_lines, _reindent, _reindent, _truncate, _nest_deeply, _billion_laughs]


def mutate_text(ch: Chooser, text: str) -> str:
    lines = text.split("\n")
    for _ in range(ch.integer(1, 3)):
        ch.choice(TEXT_MUTATIONS)(ch, lines)
    return "\n".join(lines)


# -------------------------------------------------------- structure-level mutations

# Names the loader knows, used as replacement keys and kinds so that mutations reach
# deep into the validation code instead of stopping at the first unknown key.
KNOWN_NAMES = [
    "matrix", "settings", "hptuning", "declarations", "params", "inputs", "run", "environment", "slurm", "metric",
    "component", "kind", "version", "name", "pathRef", "path_ref", "build", "concurrency", "concurrent_experiments",
    "seed", "search_method", "n_experiments", "early_stopping", "earlyStopping", "grid_search", "random_search",
    "hyperband", "bo", "numRuns", "num_runs", "maxIterations", "max_iter", "eta", "resource", "resume",
    "n_iterations", "n_initial_trials", "numInitialRuns", "utility_function", "utilityFunction",
    "acquisition_function", "gaussian_process", "kernel", "length_scale", "nu", "n_restarts_optimizer", "kappa",
    "eps", "optimization", "value", "values", "pvalues", "choice", "pchoice", "range", "linspace", "logspace",
    "geomspace", "uniform", "quniform", "loguniform", "qloguniform", "normal", "qnormal", "lognormal",
    "qlognormal", "start", "stop", "step", "num", "base", "low", "high", "q", "loc", "scale", "percent", "policy",
    "higher", "cmd", "container", "command", "args", "resources", "gpu", "limits", "partition", "time", "mem",
    "cpus", "gpus", "extra", "sbatch", "max_retries", "function", "algorithm", "tuner", "default", "type",
    "evaluation_interval", "min_samples", "min_interval",
]
KINDS = ["grid", "random", "mapping", "hyperband", "bayes", "hyperopt", "iterative", "tpe", "choice", "pchoice",
         "values", "pvalues", "range", "linspace", "logspace", "geomspace", "uniform", "quniform", "loguniform",
         "qloguniform", "normal", "qnormal", "lognormal", "qlognormal", "median", "truncation", "diff",
         "metric_early_stopping", "failure_early_stopping", "group", "operation", "component", "experiment",
         "GRID", "Random", "", "grid_search", "bo"]
SPECIAL_FLOATS = [math.nan, math.inf, -math.inf, -0.0, 0.0, 1e308, -1e308, 5e-324, 1e-300, 0.5, 1.0000001,
                  0.999999, 1e15 + 0.5, 2.5, -1.5]
SPECIAL_INTS = [0, 1, -1, 2, 3, 10, 81, 243, 999, 2**31, 2**63, -2**63, 10**12, 10**30, 10**400, -10**400]
SPECIAL_STRINGS = ["", " ", "x", "lr", "1:2:3", "0.001:0.1:5", "1:1:0", "a:b:c", "1e-3", "nan", ".inf", "1e999",
                   "{{ lr }}", "{{ lr.x }}", "{{", "python train.py --lr={{ lr }}", "module:function", "minimize",
                   "maximize", "MAXIMIZE", "int", "float", "matern", "rbf", "ucb", "ei", "poi", "tpe", "anneal",
                   "2:00:00", "4G", "--constraint=a100", "é", "😀", "\x00", "\t", "\n", "- x", "~", "null",
                   "1" * 500]


def random_value(ch: Chooser, depth: int = 0) -> Any:
    kind = ch.integer(0, 9 if depth < 2 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return ch.coin()
    if kind == 2:
        return ch.choice(SPECIAL_INTS) * ch.choice([1, 1, -1])
    if kind == 3:
        return ch.integer(-10**6, 10**6)
    if kind == 4:
        return ch.choice(SPECIAL_FLOATS)
    if kind in (5, 6):
        return ch.choice(SPECIAL_STRINGS + KINDS + KNOWN_NAMES)
    if kind == 7:
        return [random_value(ch, depth + 1) for _ in range(ch.integer(0, 4))]
    if kind == 8:
        return {random_key(ch): random_value(ch, depth + 1) for _ in range(ch.integer(0, 3))}
    # a parameter definition with the right shape and random contents
    return {ch.choice(KINDS): random_value(ch, depth + 1)}


def random_key(ch: Chooser) -> Any:
    how = ch.integer(0, 9)
    if how < 6:
        return ch.choice(KNOWN_NAMES)
    if how < 8:
        return ch.choice(["unknown_key", "hptunning", "matirx", "concurency", "lr", "learning_rate", "x y",
                          "1abc", "é", "a.b", "", "<<", "kind "])
    return ch.choice([0, 1, -1, 1.5, True, None])


Path_ = Tuple[Any, ...]


def all_paths(data: Any, path: Path_ = ()) -> List[Path_]:
    out = [path]
    if isinstance(data, dict):
        for k, v in data.items():
            out += all_paths(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += all_paths(v, path + (i,))
    return out


def _at(data: Any, path: Path_) -> Any:
    for p in path:
        data = data[p]
    return data


def _set(root: Any, path: Path_, value: Any) -> Any:
    if not path:
        return value
    _at(root, path[:-1])[path[-1]] = value
    return root


def mutate_structure(ch: Chooser, data: Any) -> Any:
    for _ in range(ch.integer(1, 4)):
        paths = all_paths(data)
        path = ch.choice(paths)
        target = _at(data, path)
        op = ch.integer(0, 7)
        if op in (0, 1):  # a value of another type
            if path or ch.coin(1):
                data = _set(data, path, random_value(ch))
        elif op == 2 and path:  # delete
            del _at(data, path[:-1])[path[-1]]
        elif op == 3:  # an unknown (or misplaced) key
            dicts = [p for p in paths if isinstance(_at(data, p), dict)]
            if dicts:
                _at(data, ch.choice(dicts))[random_key(ch)] = random_value(ch)
        elif op == 4:  # rename a key, keeping its value (`uniform:` -> `linspace:`, ...)
            dicts = [p for p in paths if isinstance(_at(data, p), dict) and _at(data, p)]
            if dicts:
                d = _at(data, ch.choice(dicts))
                old = ch.choice(list(d))
                new = ch.choice(KINDS + KNOWN_NAMES) if ch.coin(8) else random_key(ch)
                if new != old:  # in place, keeping the key order
                    items = [(new if k == old else k, v) for k, v in d.items() if k != new]
                    d.clear()
                    d.update(items)
        elif op == 5:  # rename a kind
            kinds = [p for p in paths if p and p[-1] == "kind"]
            if kinds:
                data = _set(data, ch.choice(kinds), ch.choice(KINDS))
        elif op == 6 and path:  # copy a subtree elsewhere
            data = _set(data, ch.choice(paths[1:]) if len(paths) > 1 else path, copy.deepcopy(target))
        elif path:  # wrap or unwrap
            if isinstance(target, list) and target:
                data = _set(data, path, target[0])
            elif isinstance(target, dict) and target:
                data = _set(data, path, next(iter(target.values())))
            else:
                data = _set(data, path, [target] if ch.coin() else {"value": target})
    return data


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


# --------------------------------------------------------------------- the property


def write(directory: Path, name: str, text: str) -> str:
    path = directory / name
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    return str(path)


def plan_size(spec: Spec) -> Optional[float]:
    """Roughly how many trials ``make_plan`` would list (None: cheap to plan)."""
    algo = spec.algorithm
    if isinstance(algo, GridConfig):
        size = spec.space.grid_size()
        return size if algo.n_trials is None else min(size, algo.n_trials)
    if isinstance(algo, RandomConfig):
        size = spec.space.size()
        return max(algo.n_trials, 0 if size is None else min(size, 10**9))
    if isinstance(algo, MappingConfig):
        return len(algo.values)
    if isinstance(algo, HyperbandConfig):
        # s_max = log_eta(R) brackets of up to s_max + 1 rungs
        s_max = math.log(algo.max_iter) / math.log(algo.eta)
        return (s_max + 1) ** 2
    return None


def check(path: str) -> Optional[Spec]:
    """The property. Anything but a ``UserError`` propagates and fails the test."""
    try:
        spec = load_spec(path)
    except UserError as exc:
        message = str(exc)
        assert message.strip(), f"empty error message ({type(exc).__name__})"
        assert message.startswith(path), f"error does not start with the file path: {message!r}"
        return None
    assert isinstance(spec, Spec)
    size = plan_size(spec)
    if size is not None and size > MAX_PLANNED:
        note(f"plan skipped: about {size:g} trials")
        return spec
    try:
        plan = make_plan(spec, seed=0)
    except UserError as exc:
        assert str(exc).strip(), f"empty error message ({type(exc).__name__})"
        return spec
    assert plan["n_trials"] >= 0
    assert format_plan(plan)  # what `hpc-tune plan` prints without --json
    return spec


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def text_case(ch: Chooser) -> Tuple[str, str]:
    name, text = ch.choice(CORPUS_FILES)
    return name, mutate_text(ch, text)


def structure_case(ch: Chooser) -> Tuple[str, str]:
    name, data = ch.choice(CORPUS_DATA)
    return name, dump(mutate_structure(ch, copy.deepcopy(data)))


@FUZZ_SETTINGS
@given(data=st.data())
def test_text_mutations_load_or_fail_clearly(fuzz_dir: Path, data: Any) -> None:
    name, text = text_case(DrawChooser(data))
    note(f"{name} mutated:\n{text}")
    check(write(fuzz_dir, name, text))


@FUZZ_SETTINGS
@given(data=st.data())
def test_structure_mutations_load_or_fail_clearly(fuzz_dir: Path, data: Any) -> None:
    name, text = structure_case(DrawChooser(data))
    note(f"{name} mutated:\n{text}")
    check(write(fuzz_dir, name, text))


def test_unmutated_corpus_loads_and_plans(fuzz_dir: Path) -> None:
    for name, text in CORPUS_FILES:
        assert check(write(fuzz_dir, name, text)) is not None, name


# ------------------------------------------------------------------ the real CLI


def _cli_case(i: int, directory: Path) -> Tuple[str, str]:
    ch = RandomChooser(1000 + i)
    name, text = text_case(ch) if i % 2 == 0 else structure_case(ch)
    sub = directory / f"case{i:02d}"
    sub.mkdir(exist_ok=True)
    return write(sub, name, text), text


def _run_validate(path: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hpc_tune", "validate", path], capture_output=True, text=True,
                          errors="replace", cwd=str(REPO_ROOT), timeout=300)


def test_cli_validate_on_mutated_files(tmp_path: Path) -> None:
    cases = [_cli_case(i, tmp_path) for i in range(CLI_SAMPLE)]
    # One interpreter per file is mostly import time: run them two (or more) at a time.
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = list(pool.map(_run_validate, [path for path, _ in cases]))
    codes = set()
    for (path, text), res in zip(cases, results):
        where = f"{path}\n--- file ---\n{text[:2000]}\n--- stderr ---\n{res.stderr[-3000:]}"
        codes.add(res.returncode)
        assert "Traceback" not in res.stderr, where
        assert res.returncode in (0, 2), where
        if res.returncode == 2:
            assert res.stderr.startswith("hpc-tune: error: "), where
            assert path in res.stderr, where
        else:
            assert res.stdout.startswith(f"{path}: ok"), where
    assert 2 in codes  # the sample does exercise the error path
