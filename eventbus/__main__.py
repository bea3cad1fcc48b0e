"""``python -m eventbus``: the same as the ``eventbus`` command."""

import sys

from ._cli import main

sys.exit(main())
