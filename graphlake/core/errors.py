"""Errors every stage raises for the user's input, and the exit codes the CLI maps errors to.

The exit codes are a contract with schedulers (Airflow, cron, scripts), which read nothing else:

======  =====================================================================================
code    meaning
======  =====================================================================================
0       success
1       a job or gate failed (a quality suite, a promotion gate, a training rank, a conflict)
2       the user's input is wrong: an argument, a config file, a lake, run or version that
        does not exist, a SQL function's argument
3       an internal error (a bug): the one-line message names the log file with the trace
======  =====================================================================================

Only exceptions of the classes below (and argparse's own usage errors) give exit 2. A plain
``ValueError`` raised deep inside a stage is a bug, not the user's fault: exit 3.

Example:
    >>> from graphlake.core.errors import UsageError
    >>> raise UsageError(f"k: expected an int in 1..1000, got {k!r}")
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


class UsageError(ValueError):
    """The caller's input is wrong (an argument, a config value); the message names it. Exit 2."""


class ConfigError(UsageError):
    """A config file is unreadable or invalid; the message names the file (and line, for YAML). Exit 2."""


class InputNotFoundError(UsageError, FileNotFoundError):
    """Something the caller named does not exist: a folder, a lake, a table, a run, a version. Exit 2."""
