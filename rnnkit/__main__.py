"""``python -m rnnkit ...`` runs the command line, the same as ``rnnkit ...``."""

import sys

from rnnkit.cli import main

sys.exit(main())
