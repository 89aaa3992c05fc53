"""``python -m sktopo`` is the ``sktopo`` command."""

import sys

from sktopo.cli import main

sys.exit(main())
