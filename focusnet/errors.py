"""User-facing errors.

Every problem caused by the user's input (a file, a folder, a config value, a model name)
is raised as :class:`FocusNetError`. The command line prints its message as one line and
exits with code 2; ``--debug`` shows the traceback.

Where a documentation page explains the fix, the error names it: ``see="docs/how-to/own-data.md"``
appends `` (see docs/how-to/own-data.md)`` to the message (paths are relative to the repository
root; ``tests/docs`` checks that every page named this way exists).
"""
from __future__ import annotations

#: Pages that explain how to fix a kind of error (relative to the repository root).
DOCS_CONFIG = "docs/reference/config.md"
DOCS_OWN_DATA = "docs/how-to/own-data.md"
DOCS_FORMAT = {
    "folder": DOCS_OWN_DATA,
    "isic2018": "docs/how-to/isic2018.md",
    "dsb2018": "docs/how-to/dsb2018.md",
    "nnunet": "docs/how-to/nnunet.md",
}


class FocusNetError(Exception):
    """An error in the user's input: one clear line saying what, which file, and the fix.

    Args:
        message: the line: what is wrong, in which file or key, and the fix.
        see: optional documentation page that explains the fix; rendered as `` (see PAGE)``
            after the message and kept in :attr:`see` (the message alone in :attr:`message`).

    Example:
        >>> raise FocusNetError("masks/a.png: missing mask for image 'a'; add it or remove images/a.png")
        Traceback (most recent call last):
        ...
        focusnet.errors.FocusNetError: masks/a.png: missing mask for image 'a'; add it or remove images/a.png
        >>> str(FocusNetError("epochs: must be an integer >= 1; got 0", see="docs/reference/config.md"))
        'epochs: must be an integer >= 1; got 0 (see docs/reference/config.md)'
    """

    exit_code = 2

    def __init__(self, message: str = "", *args: object, see: str | None = None) -> None:
        self.message, self.see = message, see
        super().__init__(f"{message} (see {see})" if see else message, *args)
