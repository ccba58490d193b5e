"""``python -m bot`` is the ``opsbot`` command."""

import sys

from bot.doors.cli import main

sys.exit(main())
