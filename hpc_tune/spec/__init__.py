"""Parse and validate a study file into a frozen ``Spec``."""
from .loader import build_spec, load_spec, spec_from_dict
from .model import *  # noqa: F401,F403
from .render import Command, TemplateError, render
from .submittable import check_submittable

__all__ = ["load_spec", "spec_from_dict", "build_spec", "render", "Command", "TemplateError", "check_submittable"]
