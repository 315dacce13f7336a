"""Parse and validate a study file into a frozen ``Spec``."""
from .loader import build_spec, load_spec, spec_from_dict
from .model import *  # noqa: F401,F403
from .render import TemplateError, render

__all__ = ["load_spec", "spec_from_dict", "build_spec", "render", "TemplateError"]
