"""KD methods, one per file, registered by name. Import this package to register them all.

To add a method: write one Python file with a :class:`DistillationMethod` subclass decorated
with :func:`register`, and either put it here (imported below) or list its path in the config key
``students.method_files``; then name it in ``students.methods`` (options under ``kd.<name>``).
"""
from kdsd.distill.base import (DistillationMethod, get_method, load_method_files, method_names,
                               register)
from kdsd.distill import cosine, hint, none, output, sp2step  # noqa: F401  (registration)

__all__ = ["DistillationMethod", "get_method", "load_method_files", "method_names", "register"]
