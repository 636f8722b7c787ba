"""The errors a user can cause: the command line prints their message on one line and exits 2."""


class LeanGPTError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits non-zero."""


class ConfigError(LeanGPTError, ValueError):
    """A bad configuration key, value or combination."""


class MissingDependency(LeanGPTError, ImportError):
    """An optional library a variant needs is not installed (the CLI prints the one line)."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message cut to one line for an `error:` line: its first non-empty line (at
    most `limit` characters), else the exception's type."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:limit] if lines else type(exc).__name__
