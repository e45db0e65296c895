"""Allow ``python -m kvdb`` as well as the ``kvdb`` console script."""

import sys

from kvdb.cli import main

sys.exit(main())
