"""The one exception type users see: a one-line message naming the file and the problem."""
from __future__ import annotations


class KdsdError(Exception):
    """An input or configuration problem the user can fix.

    The CLI prints ``kdsd: error: <message>`` and exits with status 2, never a traceback.
    Messages name the offending file (or config key) first, then the problem.
    """
