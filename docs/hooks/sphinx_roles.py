"""Griffe extension: the docstrings' Sphinx roles rendered as code in the API reference.

phyll's docstrings name objects with reStructuredText roles (``:class:`~phyll.network.Model```).
Markdown has no roles, so each becomes inline code of the name it shows (the last component
after ``~``), and ``:math:`x``` its formula as code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:mod|class|func|meth|attr|data|exc|obj|const|math):`(~?)([^`]+)`")


def plain(match: re.Match[str]) -> str:
    """``:role:`~a.b.c``` → ``c``; ``:role:`a.b``` → ``a.b``, as inline code."""
    tilde, name = match.groups()
    return f"`{name.rsplit('.', 1)[-1] if tilde else name}`"


class SphinxRoles(griffe.Extension):
    """Rewrites the roles of every docstring as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(plain, obj.docstring.value)
