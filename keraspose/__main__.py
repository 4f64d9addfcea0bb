"""``python -m keraspose ...``: the same as the ``keraspose`` command (see :mod:`keraspose.cli`)."""

import sys

from keraspose.cli import main

if __name__ == "__main__":
    sys.exit(main())
