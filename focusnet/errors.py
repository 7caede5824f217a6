"""User-facing errors.

Every problem caused by the user's input (a file, a folder, a config value, a model name)
is raised as :class:`FocusNetError`. The command line prints its message as one line and
exits with code 2; ``--debug`` shows the traceback.
"""
from __future__ import annotations


class FocusNetError(Exception):
    """An error in the user's input: one clear line saying what, which file, and the fix.

    Example:
        >>> raise FocusNetError("masks/a.png: missing mask for image 'a'; add it or remove images/a.png")
        Traceback (most recent call last):
        ...
        focusnet.errors.FocusNetError: masks/a.png: missing mask for image 'a'; add it or remove images/a.png
    """

    exit_code = 2
