"""Bad study files give one SpecError naming file, line and key path, and what was expected."""
import subprocess
import sys
import textwrap

import pytest

from hpc_tune import cli
from hpc_tune.errors import SpecError, UserError
from hpc_tune.spec import load_spec, spec_from_dict

RUN = "run:\n  cmd: python train.py --lr={{ lr }}\n"


def D(text):
    return textwrap.dedent(text).lstrip("\n")


def write(tmp_path, text, name="study.yml"):
    path = tmp_path / name
    path.write_text(D(text))
    return str(path)


def spec_error(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return path, info.value


def assert_located(err, path, line, keypath):
    assert err.file == path
    assert err.line == line, str(err)
    assert err.keypath == keypath, str(err)
    prefix = f"{path}:{line}: {keypath}: " if keypath else f"{path}:{line}: "
    assert str(err).startswith(prefix), str(err)


# Each case: the file, the line and key path the error must name, and words it must say.
CASES = {
    "unknown key, did you mean": (
        D("""
        kind: group
        hptuning:
          concurrancy: 2
          matrix:
            lr: {values: [1, 2]}
        """) + RUN,
        3, "hptuning.concurrancy", ["unknown key `concurrancy`", "did you mean `concurrency`"],
    ),
    "unknown nested key, did you mean": (
        D("""
        hptuning:
          bo:
            n_iterations: 5
            n_initial_trials: 3
            metric: {name: loss, optimization: minimize}
            utility_function:
              acquisition_function: ucb
              kapa: 2
          matrix:
            lr: {uniform: [0, 1]}
        """) + RUN,
        8, "hptuning.bo.utility_function.kapa", ["unknown key `kapa`", "did you mean `kappa`"],
    ),
    "unknown v1 key, did you mean": (
        """
        matrix:
          kind: random
          numRun: 3
          params:
            lr: {kind: choice, value: [1, 2]}
        """,
        3, "matrix.numRun", ["unknown key `numRun`", "did you mean `num_runs`"],
    ),
    "concurrency not a number": (
        D("""
        hptuning:
          concurrency: two
          matrix:
            lr: {values: [1, 2]}
        """) + RUN,
        2, "hptuning.concurrency", ["expected a whole number", "'two'"],
    ),
    "concurrency zero": (
        D("""
        hptuning:
          concurrency: 0
          matrix:
            lr: {values: [1, 2]}
        """) + RUN,
        2, "hptuning.concurrency", ["expected a whole number >= 1", "0"],
    ),
    "n_experiments a word": (
        D("""
        hptuning:
          random_search: {n_experiments: ten}
          matrix:
            lr: {uniform: [0, 1]}
        """) + RUN,
        2, "hptuning.random_search.n_experiments", ["expected a number", "'ten'"],
    ),
    "negative seed": (
        """
        matrix:
          kind: random
          numRuns: 2
          seed: -1
          params:
            lr: {kind: uniform, value: [0, 1]}
        """,
        4, "matrix.seed", ["expected a whole number >= 0", "-1"],
    ),
    "resume not a boolean": (
        """
        hptuning:
          hyperband:
            max_iter: 81
            resource: {name: steps, type: int}
            metric: {name: loss}
            resume: maybe
          matrix:
            lr: {uniform: [0, 1]}
        run:
          cmd: python t.py --lr={{ lr }} --steps={{ steps }}
        """,
        6, "hptuning.hyperband.resume", ["expected true or false", "'maybe'"],
    ),
    "optimization misspelt": (
        D("""
        hptuning:
          bo:
            n_iterations: 5
            n_initial_trials: 3
            metric: {name: loss, optimization: minimise}
          matrix:
            lr: {uniform: [0, 1]}
        """) + RUN,
        5, "hptuning.bo.metric.optimization", ["expected one of minimize, maximize", "'minimise'"],
    ),
    "values not a list": (
        D("""
        hptuning:
          matrix:
            lr:
              values: abc
        """) + RUN,
        4, "hptuning.matrix.lr.values", ["expected a list of values", "'abc'"],
    ),
    "matrix not a mapping": (
        D("""
        hptuning:
          matrix: [1, 2]
        """) + RUN,
        2, "hptuning.matrix", ["expected a mapping of parameter names"],
    ),
    "hyperband without metric": (
        """
        hptuning:
          hyperband:
            max_iter: 81
            eta: 3
            resource: {name: steps, type: int}
          matrix:
            lr: {uniform: [0, 1]}
        run:
          cmd: python t.py --lr={{ lr }} --steps={{ steps }}
        """,
        2, "hptuning.hyperband", ["Hyperband needs `metric", "optimization"],
    ),
    "bo without metric": (
        D("""
        hptuning:
          bo:
            n_iterations: 5
            n_initial_trials: 3
          matrix:
            lr: {uniform: [0, 1]}
        """) + RUN,
        2, "hptuning.bo", ["Bayesian optimisation needs `metric"],
    ),
    "v1 bayes without metric": (
        """
        matrix:
          kind: bayes
          numInitialRuns: 3
          maxIterations: 5
          params:
            lr: {kind: uniform, value: [0, 1]}
        """,
        1, "matrix", ["Bayesian optimisation needs `metric"],
    ),
    "v1 hyperband without metric": (
        """
        matrix:
          kind: hyperband
          maxIterations: 81
          resource: {name: steps, type: int}
          params:
            lr: {kind: uniform, value: [0, 1]}
        """,
        1, "matrix", ["Hyperband needs `metric"],
    ),
    "grid with a distribution": (
        """
        hptuning:
          grid_search:
            n_experiments: 3
          matrix:
            batch: {values: [1, 2]}
            lr: {uniform: [0, 1]}
        run:
          cmd: python t.py --lr={{ lr }} --batch={{ batch }}
        """,
        6, "hptuning.matrix.lr", ["grid search needs a finite list", "`lr` is a uniform"],
    ),
    "v1 grid with a weighted choice": (
        """
        matrix:
          kind: grid
          params:
            batch: {kind: choice, value: [1, 2]}
            opt: {kind: pchoice, value: [[adam, 0.5], [sgd, 0.5]]}
        """,
        5, "matrix.params.opt", ["grid search needs a finite list", "`opt` is a pvalues"],
    ),
    "two algorithms": (
        D("""
        hptuning:
          grid_search: {n_experiments: 3}
          random_search: {n_experiments: 3}
          matrix:
            lr: {values: [1, 2]}
        """) + RUN,
        3, "hptuning.random_search", ["choose one search algorithm", "grid_search", "random_search"],
    ),
    "search_method and an algorithm block": (
        D("""
        settings:
          search_method: random
          grid_search: {n_experiments: 3}
        matrix:
          lr: {values: [1, 2]}
        """) + RUN,
        2, "settings.search_method", ["both choose an algorithm"],
    ),
    "pvalues summing over 1": (
        """
        hptuning:
          random_search: {n_experiments: 2}
          matrix:
            opt:
              pvalues: [[adam, 0.7], [sgd, 0.5]]
        run:
          cmd: python t.py --opt={{ opt }}
        """,
        5, "hptuning.matrix.opt.pvalues", ["probabilities sum to 1.2", "must not exceed 1"],
    ),
    "probability outside [0, 1]": (
        """
        hptuning:
          random_search: {n_experiments: 2}
          matrix:
            opt:
              pvalues:
                - [adam, 0.5]
                - [sgd, 1.5]
        run:
          cmd: python t.py --opt={{ opt }}
        """,
        7, "hptuning.matrix.opt.pvalues[1]", ["probability must be in [0, 1]", "1.5"],
    ),
    "numeric spec with a word": (
        D("""
        hptuning:
          random_search: {n_experiments: 2}
          matrix:
            lr:
              linspace: 0.1:abc:5
        """) + RUN,
        5, "hptuning.matrix.lr.linspace", ["expected numbers in `linspace: start:stop:num`", "'0.1:abc:5'"],
    ),
    "numeric spec with too few numbers": (
        D("""
        hptuning:
          random_search: {n_experiments: 2}
          matrix:
            lr:
              linspace: 0.1:1
        """) + RUN,
        5, "hptuning.matrix.lr.linspace", ["linspace takes 3 numbers", "start, stop, num", "got 2"],
    ),
    "numeric spec with too many numbers": (
        D("""
        hptuning:
          random_search: {n_experiments: 2}
          matrix:
            lr:
              uniform: 0:1:2
        """) + RUN,
        5, "hptuning.matrix.lr.uniform", ["uniform takes 2 numbers", "got 3"],
    ),
    "numeric spec empty part": (
        D("""
        hptuning:
          random_search: {n_experiments: 2}
          matrix:
            lr:
              range: 1::2
        """) + RUN,
        5, "hptuning.matrix.lr.range", ["expected numbers in `range: start:stop:step`"],
    ),
    "uniform low above high": (
        D("""
        hptuning:
          random_search: {n_experiments: 2}
          matrix:
            lr:
              uniform: 5:1
        """) + RUN,
        5, "hptuning.matrix.lr.uniform", ["invalid uniform", "low (5) must be less than high (1)"],
    ),
    "linspace fractional num": (
        D("""
        hptuning:
          matrix:
            lr:
              linspace: 0:1:2.5
        """) + RUN,
        4, "hptuning.matrix.lr.linspace", ["`num` of linspace must be a whole number", "2.5"],
    ),
    "range step zero": (
        D("""
        hptuning:
          matrix:
            lr:
              range: [0, 1, 0]
        """) + RUN,
        4, "hptuning.matrix.lr.range", ["invalid range", "step must not be 0"],
    ),
    "range empty": (
        D("""
        hptuning:
          matrix:
            lr:
              range: 5:1:1
        """) + RUN,
        4, "hptuning.matrix.lr.range", ["invalid range", "empty"],
    ),
    "logspace negative base": (
        D("""
        hptuning:
          matrix:
            lr:
              logspace: 0:2:3:-2
        """) + RUN,
        4, "hptuning.matrix.lr.logspace", ["invalid logspace", "base must be positive"],
    ),
    "loguniform bound overflows": (
        D("""
        hptuning:
          random_search: {n_experiments: 2}
          matrix:
            lr:
              loguniform: [1, 1000]
        """) + RUN,
        5, "hptuning.matrix.lr.loguniform", ["invalid loguniform", "natural log", "overflows"],
    ),
    "named numeric keys with an unknown one": (
        D("""
        hptuning:
          random_search: {n_experiments: 2}
          matrix:
            lr:
              uniform: {low: 0, hihg: 1}
        """) + RUN,
        5, "hptuning.matrix.lr.uniform.hihg", ["unknown key 'hihg' for uniform", "low, high"],
    ),
    "unknown parameter kind": (
        D("""
        hptuning:
          random_search: {n_experiments: 2}
          matrix:
            lr: {unifrom: [0, 1]}
        """) + RUN,
        4, "hptuning.matrix.lr.unifrom", ["unknown parameter kind `unifrom`", "did you mean `uniform`?"],
    ),
    "unknown v1 parameter kind": (
        """
        matrix:
          kind: random
          numRuns: 2
          params:
            lr: {kind: unifrom, value: [0, 1]}
        """,
        5, "matrix.params.lr.kind", ["unknown kind 'unifrom'", "choice", "uniform"],
    ),
    "unknown placeholder": (
        """
        hptuning:
          matrix:
            lr: {values: [1, 2]}
        declarations:
          batch: 3
        run:
          cmd: python t.py --lr={{ lr }} --bs={{ batch_size }}
        """,
        7, "run.cmd", ["{{ batch_size }}", "not defined", "known names: batch, lr"],
    ),
    "malformed placeholder": (
        """
        hptuning:
          matrix:
            lr: {values: [1, 2]}
        run:
          cmd: python t.py --lr={{ lr | float }}
        """,
        5, "run.cmd", ["placeholder '{{ lr | float }}'", "plain names"],
    ),
    "duplicate key": (
        D("""
        hptuning:
          matrix:
            lr: {values: [1, 2]}
            lr: {values: [3]}
        """) + RUN,
        4, "hptuning.matrix.lr", ["key 'lr' appears twice"],
    ),
    "missing matrix": (
        D("""
        hptuning:
          concurrency: 2
        """) + RUN,
        1, "hptuning", ["missing required section `matrix`"],
    ),
    "random with distributions and no count": (
        D("""
        hptuning:
          random_search: {}
          matrix:
            lr: {uniform: [0, 1]}
        """) + RUN,
        1, "hptuning", ["random search needs `n_experiments`"],
    ),
    "mapping without values": (
        """
        matrix:
          kind: mapping
          values: []
        """,
        3, "matrix.values", ["a mapping needs `values`"],
    ),
    "hyperband resource is a parameter": (
        """
        matrix:
          kind: hyperband
          maxIterations: 27
          resource: {name: lr, type: int}
          metric: {name: loss}
          params:
            lr: {kind: uniform, value: [0, 1]}
        """,
        4, "matrix.resource.name", ["resource `lr` is also a searched parameter"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_file_gives_one_located_error(tmp_path, name):
    text, line, keypath, words = CASES[name]
    path, err = spec_error(tmp_path, text)
    assert_located(err, path, line, keypath)
    for w in words:
        assert w in err.message, f"{w!r} not in {err.message!r}"
    assert isinstance(err, UserError) and err.exit_code == 2


def test_invalid_yaml_names_the_line(tmp_path):
    path, err = spec_error(tmp_path, D("""
        hptuning:
          matrix:
            lr: {values: [1, 2}
        """) + RUN)
    assert err.file == path
    assert err.line == 3
    assert str(err).startswith(f"{path}:3: not valid YAML: ")
    assert "']'" in err.message or "','" in err.message


def test_invalid_indentation_names_the_line(tmp_path):
    path, err = spec_error(tmp_path, D("""
        hptuning:
          matrix:
            lr:
              values: [1, 2]
             bad: 3
        """) + RUN)
    assert err.line == 5
    assert "not valid YAML" in err.message


def test_tabs_are_invalid_yaml_with_a_line(tmp_path):
    path = tmp_path / "tabs.yml"
    path.write_text("hptuning:\n\tmatrix:\n")
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    assert info.value.line == 2


def test_file_that_is_not_a_mapping(tmp_path):
    path, err = spec_error(tmp_path, "- a\n- b\n")
    assert err.line == 1
    assert "a study file is a YAML mapping" in err.message


def test_empty_file(tmp_path):
    path, err = spec_error(tmp_path, "")
    assert err.file == path
    assert "a study file is a YAML mapping" in err.message


def test_no_search_section(tmp_path):
    path, err = spec_error(tmp_path, "version: 1\nkind: group\n" + RUN)
    assert "no search found" in err.message
    assert "hptuning" in err.message and "matrix" in err.message


def test_missing_file():
    with pytest.raises(SpecError) as info:
        load_spec("/nonexistent/study.yml")
    assert str(info.value) == "/nonexistent/study.yml: no such file"


def test_unknown_top_level_key_is_a_warning_not_an_error(tmp_path):
    path = write(tmp_path, D("""
        hptuning:
          matrix:
            lr: {values: [1, 2]}
        colour: blue
        """) + RUN)
    spec = load_spec(path)
    assert any("unknown top-level key `colour`" in w and ":4:" in w for w in spec.warnings)


def test_dict_specs_have_key_path_without_line():
    with pytest.raises(SpecError) as info:
        spec_from_dict({"matrix": {"kind": "random", "numRuns": 2,
                                   "params": {"lr": {"kind": "uniform", "value": "a:b"}}}})
    err = info.value
    assert err.line is None
    assert err.keypath == "matrix.params.lr.value"
    assert str(err).startswith("<dict>: matrix.params.lr.value: expected numbers")


def test_colon_specs_that_yaml_1_1_reads_as_base_60_are_parsed(tmp_path):
    # `1:10:1` is 4201 and `1:5` is 65 to YAML 1.1; they must reach the parser as text.
    path = write(tmp_path, """
        hptuning:
          random_search: {n_experiments: 3}
          matrix:
            depth: {range: 1:10:1}
            lr: {uniform: 1:5}
        run:
          cmd: python t.py --lr={{ lr }} --depth={{ depth }}
        slurm:
          time: 2:00:00
        """)
    spec = load_spec(path)
    assert spec.space["depth"].values == tuple(range(1, 10))
    assert (spec.space["lr"].low, spec.space["lr"].high) == (1, 5)
    assert spec.slurm.time == "2:00:00"


# ---------------------------------------------------------------------------- the CLI


BAD_FILE = """
kind: group
hptuning:
  concurrancy: 2
  matrix:
    lr: {values: [1, 2]}
""" + RUN


def test_cli_error_in_process(tmp_path, capsys):
    path = write(tmp_path, BAD_FILE)
    assert cli.main(["validate", path]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("hpc-tune: error: ")
    assert f"{path}:3: hptuning.concurrancy: unknown key" in err
    assert "did you mean `concurrency`" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", [["validate"], ["plan", "--json"]])
def test_cli_error_in_a_real_process(tmp_path, command):
    path = write(tmp_path, BAD_FILE)
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from hpc_tune.cli import main; sys.exit(main())", *command, path],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("hpc-tune: error: ")
    assert f"{path}:3: hptuning.concurrancy:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_cli_invalid_yaml_and_missing_file(tmp_path, capsys):
    path = write(tmp_path, "a: [1, 2\n")
    assert cli.main(["validate", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hpc-tune: error: {path}:")
    assert "not valid YAML" in err
    assert cli.main(["validate", str(tmp_path / "nope.yml")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"hpc-tune: error: {tmp_path / 'nope.yml'}: no such file"
