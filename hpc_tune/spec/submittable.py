"""What ``submit`` needs of a study beyond a valid file: a command, the optional packages its
algorithm imports, and the resources it asks for on the backend it would run on. ``validate``
and ``plan`` run the same checks, so they refuse exactly what ``submit`` would."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from typing import Any, Optional, Tuple

from ..errors import SpecError
from .model import HyperoptConfig, IterativeConfig, Spec
from .source import Section, Source


def check_submittable(spec: Spec, backend: str, gpus: Optional[int] = None, local_gpus: int = 0) -> None:
    """Raise ``SpecError`` (file, line, key path) for what ``submit`` would refuse.
    ``gpus``: a ``--gpus`` given on the command line, which overrides the file;
    ``local_gpus``: how many GPUs the local backend has (``backends.local.detect_gpus``)."""
    if spec.run.cmd is None:
        raise spec.run.missing or SpecError("no command for the trials to run", spec.path, 1)
    if isinstance(spec.algorithm, HyperoptConfig) and not _installed("hyperopt"):
        raise _at(spec, [("matrix", "kind")], f"`kind: {spec.algorithm.kind}` needs hyperopt, which is not "
                  f"installed: pip install 'hpc-tune[hyperopt]'  (or: pip install hyperopt)")
    if isinstance(spec.algorithm, IterativeConfig):
        _check_function(spec, spec.algorithm.function)
    wanted = spec.slurm.gpus if gpus is None else gpus
    if backend == "local" and wanted > 0:
        have = local_gpus
        if wanted > have:
            where = [("slurm", "gpus"), ("environment", "resources", "gpu"),
                     ("run", "container", "resources", "limits")]
            raise _at(spec, where, f"each trial asks for {wanted} GPU(s), and the local backend has {have} on this "
                      f"machine: run on Slurm (--backend slurm), or submit with --gpus 0 to run the trials without "
                      f"a GPU")


def _check_function(spec: Spec, ref: str) -> None:
    """The module of an iterative search's ``module:function`` can be found where the
    controller looks: the study file's folder, then the Python path. (Imported only there:
    importing runs the user's code.)"""
    top = ref.partition(":")[0].split(".")[0]
    if top in sys.modules:
        return
    folders = [os.path.dirname(os.path.abspath(spec.path))] + sys.path
    if importlib.machinery.PathFinder.find_spec(top, folders) is None:
        raise _at(spec, [("matrix", "function")], f"cannot find the module `{top}` of `{ref}` in the study file's "
                  f"folder or on the Python path")


def _installed(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _at(spec: Spec, candidates: Any, message: str) -> SpecError:
    """The error at the first of ``candidates`` (key paths, spelled snake_case) the file has."""
    source = spec.source if isinstance(spec.source, Source) else Source(spec.path, {})
    root = Section(spec.raw, (), source)
    for path in candidates:
        sec, found = root, True
        for key in path:
            if not sec.has(key):
                found = False
                break
            sec = sec.child(key)
        if found:
            return SpecError(message, source.file, source.line(sec.path), sec.keypath() or None)
    return SpecError(message, source.file, 1)


__all__: Tuple[str, ...] = ("check_submittable",)
