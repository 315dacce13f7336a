"""hpc-tune: hyperparameter tuning on Slurm clusters."""
__version__ = "0.1.0"
