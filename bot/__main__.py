"""``python -m bot`` is the same as the ``inquiry-bot`` console script."""

import sys

from bot.ops.cli import main

sys.exit(main())
