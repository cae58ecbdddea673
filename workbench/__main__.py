"""``python -m workbench``: the command line (``workbench.cli.main``)."""

import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
