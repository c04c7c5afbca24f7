"""``python -m bot`` is the same as the ``inquiry-bot`` console script."""

from bot.ops.cli import entry

entry()
