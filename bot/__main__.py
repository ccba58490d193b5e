"""``python -m bot`` is the ``opsbot`` command."""

import sys

from bot.cli import main

sys.exit(main())
