"""The error a user can fix: one type the command line reports as one line, exit status 2.

Every error phyll raises about its input (an unknown name, a bad parameter, a missing or
malformed file, a run folder that cannot be used, a physical system that fails) derives from
:class:`UserError`. Anything else is a bug and keeps its traceback. Subclasses that used to be
``ValueError``s still are, so ``except ValueError`` in user code keeps working.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

#: C0 and C1 control characters and DEL (newlines and tabs included): a terminal obeys them
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class UserError(Exception):
    """Something the user can fix; its message is one line saying what and how."""


class ConfigError(UserError, ValueError):
    """A configuration value is invalid (out of range, unknown name, wrong type)."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices`` to a mistyped ``name`` (case
    ignored), or ``""`` when none is close: for the one-line errors about unknown names."""
    options = {str(c).lower(): str(c) for c in choices}
    close = difflib.get_close_matches(name.lower(), list(options), n=1, cutoff=0.6)
    return f" (did you mean {options[close[0]]!r}?)" if close else ""


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: every control character (an escape sequence's
    ESC, a carriage return, a bell, a newline) written as ``\\x1b``, ``\\r``... Text from outside
    (a server's refusal, a file's content) can otherwise retitle or clear the user's terminal."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)
