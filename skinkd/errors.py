"""Errors a user can act on: each message names the file or config key and the problem."""


class SkinkdError(Exception):
    """Base class: caught by the rule scripts and reported without a traceback."""


class DataError(SkinkdError):
    """A data file (image, metadata, folder) is missing, unreadable or inconsistent."""


class ConfigError(SkinkdError):
    """A config value is invalid; the message names the key's path."""
