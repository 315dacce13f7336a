"""hpc-tune: hyperparameter tuning on Slurm clusters.

In a trial:        ``hpc_tune.report(step=3, loss=0.41)``
Without Slurm:     ``hpc_tune.Tuner.from_file("study.yml")`` (ask/tell)
A study's results: ``hpc_tune.load_study("study-id-or-folder")``
"""
__version__ = "0.1.0"

# Imported on first use (PEP 562): a trial that only reports pays for nothing else, and
# `python -m hpc_tune.trial` does not find its own module already imported.
_LAZY = {"report": "trial", "checkpoint_dir": "trial", "Tuner": "tuner", "Trial": "tuner", "load_study": "results"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'hpc_tune' has no attribute {name!r}")


__all__ = ["report", "checkpoint_dir", "Tuner", "Trial", "load_study", "__version__"]
