"""``python -m leakguard``: the command line (see :mod:`leakguard._cli`)."""

import sys

from ._cli import main

sys.exit(main())
