"""A user's code: imported by ``MODULE:NAME`` only with consent, and its failures in one line.

* :func:`import_object` imports ``NAME`` from ``MODULE`` (a user's system class or factory,
  or rule class) with one-line errors; :func:`importable_path` is the reverse, the
  ``MODULE:NAME`` that imports an object back (what a run built from Python records).
* :func:`check_recorded` is the gate for names read from a file (a run folder's
  ``config.json``, a checkpoint, an experiment's record): a name phyll does not know is
  imported only when the user says so (``trust``), and a name of neither form is refused
  before anything is imported. A run folder someone hands you never runs code by itself.
* :func:`user_code` turns any exception raised by a user's code (a factory, a driver's
  measurement) into one :class:`UserCodeError` line naming the code and the exception; the
  original stays chained (``phyll --debug`` prints its traceback).
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

from phyll.errors import ConfigError, UserError

#: ``package.module:Name``: dotted identifiers, a colon, one identifier
IMPORT_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
#: what a caller trusts: everything (True), nothing (False), or these ``MODULE:NAME`` paths
Trust = bool | Collection[str]


class UserCodeError(UserError, RuntimeError):
    """A user's code (a system factory, a driver, a rule) raised an exception."""


class CodeNotTrustedError(UserError, ValueError):
    """A name read from a file would import code the user has not agreed to run."""


def is_import_path(text: str) -> bool:
    """Whether ``text`` has the ``MODULE:NAME`` form (nothing is imported)."""
    return IMPORT_PATH.fullmatch(text) is not None


def import_object(path: str, what: str) -> Any:
    """The object ``NAME`` of module ``MODULE`` for ``MODULE:NAME``, or one clear error."""
    if not is_import_path(path):
        raise ConfigError(f"{what} {path!r}: expected a registered name or MODULE:NAME")
    module_name, _, name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"{what} {path!r}: cannot import module {module_name!r} ({exc}); is its folder "
            "on the import path (PYTHONPATH)?"
        ) from None
    except Exception as exc:  # the module's own code failed while it was imported
        raise UserCodeError(
            f"{what} {path!r}: importing {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    obj = getattr(module, name, None)
    if obj is None:
        raise ConfigError(f"{what} {path!r}: module {module_name!r} has no {name!r}")
    return obj


def importable_path(obj: Any) -> str | None:
    """``MODULE:NAME`` that imports ``obj`` back (a module-level class or function of an
    importable module), else None (a lambda, a closure, a method, code of ``__main__``)."""
    module_name = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None)
    if not module_name or not isinstance(name, str) or module_name == "__main__":
        return None
    path = f"{module_name}:{name}"
    module = sys.modules.get(module_name)
    if not is_import_path(path) or module is None or getattr(module, name, None) is not obj:
        return None
    return path


def check_recorded(
    what: str, name: str, known: Callable[[str], bool], trust: Trust, where: str
) -> None:
    """Refuse, before anything is imported, a ``what`` named ``name`` in the file ``where``
    that would import code the user has not trusted.

    ``known(name)`` says whether the name is phyll's own (registered, or marked ``python:``:
    an object the caller passes again). A ``MODULE:NAME`` is imported only when ``trust`` is
    True or lists it; anything else is not a name phyll records, and is refused.
    """
    if known(name):
        return
    if not is_import_path(name):
        raise CodeNotTrustedError(
            f"{where} records {what} {name!r}, which is neither a registered {what} nor "
            "MODULE:NAME: refused, nothing was imported"
        )
    if trust is True or (not isinstance(trust, bool) and name in trust):
        return
    module = name.partition(":")[0]
    raise CodeNotTrustedError(
        f"{where} records {what} {name!r}: module {module!r} was not imported (a run folder "
        f"never runs code by itself); if you trust it, pass --trust-code (Python: "
        f"trust_code=True) or --{what} {name} again"
    )


def describe_exception(exc: BaseException) -> str:
    """``"ZeroDivisionError: division by zero"`` on one line (at most 300 characters)."""
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextmanager
def user_code(what: str, doing: str, error: type[UserError] = UserCodeError) -> Iterator[None]:
    """Inside: an exception of a user's code ``what`` (e.g. ``"system 'mod:make'"``) while
    ``doing`` (``"building"``) becomes one ``error`` line (a :class:`UserCodeError` unless
    told); phyll's own user errors pass as they are, and so do Ctrl-C and the signals that
    stop a run."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        raise error(f"{what} failed while {doing}: {describe_exception(exc)}") from exc
