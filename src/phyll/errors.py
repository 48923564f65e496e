"""The error a user can fix: one type the command line reports as one line, exit status 2.

Every error phyll raises about its input (an unknown name, a bad parameter, a missing or
malformed file, a run folder that cannot be used, a physical system that fails) derives from
:class:`UserError`. Anything else is a bug and keeps its traceback. Subclasses that used to be
``ValueError``s still are, so ``except ValueError`` in user code keeps working.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; its message is one line saying what and how."""


class ConfigError(UserError, ValueError):
    """A configuration value is invalid (out of range, unknown name, wrong type)."""
