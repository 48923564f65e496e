"""One registry type for every kind of named thing: systems, rules, datasets, faults.

A :class:`Registry` maps the names the command line knows to what they build. Its entries come
from three places, read in this order:

* phyll's own, given when the registry is made (an entry may be a :class:`Lazy` import path,
  loaded on first use, so that listing names imports nothing heavy);
* what a program registers at run time (``RULES["my-rule"] = MyRule``);
* installed packages' entry points (``importlib.metadata``), one group per kind, listed
  without importing anything and loaded when their entry is first used::

      [project.entry-points."phyll.systems"]
      my-device = "mylab.device:make"

Every registry answers the same way: ``name in registry`` (nothing imported),
``registry.names()`` (sorted), ``registry[name]`` (loaded; an unknown name is one line with
"did you mean" and the valid names), ``registry.params(name)`` (the declared parameters
``phyll list --params`` prints). Experiment kinds are one more registry of the same type.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from phyll.errors import ConfigError, did_you_mean
from phyll.params import ParamInfo, describe_params
from phyll.usercode import UserCodeError, describe_exception

T = TypeVar("T")


@dataclass(frozen=True)
class Lazy:
    """A built-in entry named by its import path ``"module:attribute"``, imported on first use."""

    path: str

    def load(self) -> Any:
        module, _, attribute = self.path.partition(":")
        return getattr(importlib.import_module(module), attribute)


#: installed packages' entry points by group, read once per ``sys.path`` (each read scans every
#: installed distribution's metadata)
_INSTALLED: dict[tuple[Any, ...], importlib.metadata.EntryPoints] = {}


def installed_entry_points(group: str) -> importlib.metadata.EntryPoints:
    """The entry points of ``group`` that installed packages declare (nothing is imported)."""
    key = (group, importlib.metadata.entry_points, tuple(sys.path))
    if key not in _INSTALLED:
        _INSTALLED[key] = importlib.metadata.entry_points(group=group)
    return _INSTALLED[key]


def subclasses_of(base: type) -> Callable[[str, Any], Any]:
    """A registry's ``accept``: a subclass of ``base`` as it is, anything else refused."""

    def accept(name: str, value: Any) -> Any:
        if not (isinstance(value, type) and issubclass(value, base)):
            raise TypeError(f"expected a phyll {base.__name__} subclass, got {value!r}")
        return value

    return accept


class UnknownNameError(ConfigError, KeyError):
    """A name no registry entry has (a ``KeyError`` too, so ``registry.get`` works)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(MutableMapping[str, T], Generic[T]):
    """Names of one kind of thing (module docstring).

    Args:
        kind: what an entry is, in messages (``"system"``).
        group: the entry-point group of installed packages (``"phyll.systems"``).
        entries: phyll's own entries, in listing order (a :class:`Lazy` is imported on use).
        accept: turns what is registered or loaded into an entry, or raises ``TypeError``
            saying what it should be (default: anything is accepted as it is).
        also: what else the command line accepts, for the unknown-name message
            (``"MODULE:NAME"``).
    """

    def __init__(
        self,
        kind: str,
        group: str,
        entries: dict[str, T | Lazy] | None = None,
        *,
        accept: Callable[[str, Any], T] | None = None,
        also: str = "",
    ) -> None:
        self.kind, self.group, self.also = kind, group, also
        self._accept = accept
        self._entries: dict[str, Any] = dict(entries or {})

    # ------------------------------------------------------------------ names
    def entry_points(self) -> dict[str, importlib.metadata.EntryPoint]:
        """Installed packages' entry points of this registry's group, by name (not loaded)."""
        return {point.name: point for point in installed_entry_points(self.group)}

    def names(self) -> list[str]:
        """Every name, sorted: phyll's, run-time registrations and installed packages'."""
        return sorted({*self._entries, *self.entry_points()})

    def __contains__(self, name: object) -> bool:
        return name in self._entries or (isinstance(name, str) and name in self.entry_points())

    def __iter__(self) -> Iterator[str]:
        return iter([*self._entries, *(n for n in self.entry_points() if n not in self._entries)])

    def __len__(self) -> int:
        return len({*self._entries, *self.entry_points()})

    # ------------------------------------------------------------------ entries
    def __getitem__(self, name: str) -> T:
        if name in self._entries:
            entry = self._entries[name]
            if isinstance(entry, Lazy):
                entry = self._entries[name] = self.accepted(name, entry.load())
            return entry
        point = self.entry_points().get(name)
        if point is None:
            raise UnknownNameError(self.unknown(name))
        try:
            loaded = point.load()
        except Exception as exc:  # the package's own code failed while it was imported
            raise UserCodeError(
                f"{self.kind} {name!r} (entry point {point.value!r} of group {self.group!r}) "
                f"failed to load: {describe_exception(exc)}"
            ) from exc
        return self.accepted(name, loaded, f" (entry point {point.value!r})")

    def __setitem__(self, name: str, value: T) -> None:
        self._entries[name] = self.accepted(name, value)

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def accepted(self, name: str, value: Any, where: str = "") -> T:
        """``value`` as an entry (``accept``), or one line saying what it should be."""
        if self._accept is None:
            return value
        try:
            return self._accept(name, value)
        except TypeError as exc:
            raise ConfigError(f"{self.kind} {name!r}{where}: {exc}") from None

    def unknown(self, name: str) -> str:
        """The one-line message about an unknown ``name``: the closest name and all of them."""
        names = self.names()
        also = f", or {self.also}" if self.also else ""
        return (
            f"unknown {self.kind} {name!r}{did_you_mean(name, names)}; choose one of: "
            f"{', '.join(names)}{also}"
        )

    def name_of(self, value: Any) -> str | None:
        """The name ``value`` is registered under in phyll or at run time, else None (nothing
        is imported: a lazy entry whose module is not imported yet cannot be ``value``)."""
        for name, entry in self._entries.items():
            if isinstance(entry, Lazy):
                if entry.path.partition(":")[0] not in sys.modules:
                    continue
                entry = self[name]
            if entry is value:
                return name
        return None

    def params(self, name: str) -> list[ParamInfo]:
        """The parameters the entry ``name`` declares (its ``Params`` dataclass), if any."""
        declared = getattr(self[name], "Params", None)
        return describe_params(declared) if declared is not None else []

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
