"""Exceptions the CLI maps to exit codes."""


class BotError(Exception):
    """A failure the operator should read; the CLI prints it and exits 1."""


class ConfigError(BotError):
    """Bad or missing configuration; the CLI prints it and exits 2."""


class TransientError(BotError):
    """Worth retrying later (network down, SMTP 4xx, database busy)."""

