"""Optional extras (``pip install -e ".[ray]"``, ``".[mlflow]"``): imported when a command needs
them, so ``phyll`` starts fast and works without them; a missing one is one line saying how to
install it."""

from __future__ import annotations

import importlib
from types import ModuleType

from phyll.errors import UserError


class MissingExtraError(UserError):
    """An optional dependency is not installed."""


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` of the optional extra ``extra``, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(
            f"{purpose} needs the optional extra '{extra}' ({module} is not installed): "
            f'pip install -e ".[{extra}]" (or pip install "phyll[{extra}]")'
        ) from None
