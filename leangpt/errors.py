"""The errors a user can cause: the command line prints their message on one line and exits 2."""


class LeanGPTError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits non-zero."""


class ConfigError(LeanGPTError, ValueError):
    """A bad configuration key, value or combination."""


class MissingDependency(LeanGPTError, ImportError):
    """An optional library a variant needs is not installed (the CLI prints the one line)."""
