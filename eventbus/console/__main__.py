"""``python -m eventbus.console``: the console's command line (as ``eventbus console``)."""

import sys

from . import main

sys.exit(main())
