"""``python -m wsagg``: the same as the ``wsagg`` console script."""

import sys

from wsagg.cli import main

sys.exit(main())
