"""``python -m focusnet.cli``: the ``focusnet`` command (as the console script runs it)."""
from __future__ import annotations

import sys

from focusnet.cli import main

if __name__ == "__main__":
    sys.exit(main())
