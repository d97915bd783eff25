"""``python -m sktext``: the command line (see :mod:`sktext.cli`)."""

import sys

from .cli import main

sys.exit(main())
