"""KD methods, one per file, registered by name. Import this package to register them all.

To add a method: create ``kdsd/distill/<name>.py`` with a :class:`DistillationMethod` subclass
decorated with :func:`register`, import it below, and add the name to the schema's enum.
"""
from kdsd.distill.base import DistillationMethod, get_method, method_names, register
from kdsd.distill import cosine, hint, none, output, sp2step  # noqa: F401  (registration)

__all__ = ["DistillationMethod", "get_method", "method_names", "register"]
