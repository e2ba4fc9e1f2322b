"""``python -m rnnkit ...`` runs the command line, the same as ``rnnkit ...``."""

import sys

from rnnkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
