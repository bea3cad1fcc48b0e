"""``python -m eventbus``: the same as the ``eventbus`` command."""

import sys

from .cli import main

sys.exit(main())
