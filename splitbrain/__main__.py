"""``python -m splitbrain``: the same as the ``splitbrain`` command."""

import sys

from .cli import main

sys.exit(main())
