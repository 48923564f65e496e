"""Declared parameters: every physical system and learning rule lists its knobs as a dataclass.

A parameter is a dataclass field made with :func:`param`: a type (the annotation), a default,
a unit and a one-line help string. From that one declaration come

* validation of user input (:func:`build_params`): an unknown name is one line listing the valid
  ones, a value of the wrong type is one line naming the parameter and the expected type; and of
  a dataclass built in Python (:func:`check_fields`: strict types, ranges, choices);
* the ``KEY=VALUE`` parsing of the command line (:func:`parse_params`);
* the listing of ``phyll list --params`` (:func:`describe_params`);
* ``describe()`` records and design models (``dataclasses.replace``) of the systems.

Values arrive from Python (already typed) or from the command line (strings, or literals such as
``0.5``, ``None``, ``(1, 2)``); :func:`coerce` turns them into the declared type or refuses.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import numbers
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from phyll.errors import ConfigError

T = TypeVar("T")


class ParamError(ConfigError):
    """A parameter is unknown, of the wrong type or out of range."""


def param(
    default: Any,
    help: str,
    unit: str = "",
    *,
    low: float | None = None,
    high: float | None = None,
    high_open: bool = False,
    profile: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    """A declared parameter: a dataclass field with its help text and unit.

    ``low`` / ``high``: its declared range (inclusive; ``high_open``: ``high`` excluded),
    checked on every value given (a tuple's every element): a parameter that sizes an array
    (bits of a converter, paths, hidden widths, channel counts) declares one, so a huge value
    is one line, not an allocation that never ends. ``profile``: its default by dataset kind
    (``{"tabular": 30, "image": 15}``), applied by the owner where the value is left unset
    (None). ``metadata``: what else the owner's tools read (e.g. how a command line shows it).
    A mutable default (a list, a dict) is copied for every instance.
    """
    meta = {
        **(metadata or {}),
        "help": help,
        "unit": unit,
        "range": (low, high),
        "high_open": high_open,
        "profile": dict(profile or {}),
    }
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def parse_params(pairs: Iterable[str]) -> dict[str, Any]:
    """``["noise_std=0.01", "encoding=phase"]`` → ``{"noise_std": 0.01, "encoding": "phase"}``.

    Values are Python literals where they parse as one (numbers, ``None``, tuples), else strings;
    :func:`build_params` then checks them against the declared types.
    """
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParamError(f"expected KEY=VALUE, got {pair!r}")
        try:
            params[key] = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            params[key] = raw.strip()
    return params


def build_params(cls: type[T], values: Mapping[str, Any], owner: str) -> T:
    """An instance of the parameter dataclass ``cls`` from ``values`` (checked and coerced).

    ``owner`` names what the parameters belong to in messages, e.g. ``"system 'acoustic'"``.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        listed = ", ".join(fields) or "(none)"
        raise ParamError(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"for {owner}; valid: {listed}"
        )
    hints = get_type_hints(cls)
    typed = {
        name: coerce(value, hints[name], f"{owner} parameter {name!r}")
        for name, value in values.items()
    }
    for name, value in typed.items():
        check_range(value, fields[name], f"{owner} parameter {name!r}")
    try:
        return cls(**typed)
    except ParamError:
        raise
    except (TypeError, ValueError) as exc:
        raise ParamError(f"{owner}: {exc}") from None


def declared_range(f: dataclasses.Field[Any]) -> tuple[float | None, float | None]:
    """The ``(low, high)`` a parameter declares (None: unbounded on that side)."""
    low, high = f.metadata.get("range", (None, None))
    return low, high


def check_range(value: Any, f: dataclasses.Field[Any], what: str) -> None:
    """Refuse a number (or a tuple element) outside the field's declared range."""
    low, high = declared_range(f)
    if low is None and high is None:
        return
    high_open = f.metadata.get("high_open", False)
    for item in value if isinstance(value, tuple) else (value,):
        if isinstance(item, bool) or not isinstance(item, int | float):
            continue
        above = high is not None and not (item < high if high_open else item <= high)
        if (low is not None and not item >= low) or above:
            raise ParamError(f"{what} must be {range_phrase(f)}, got {item!r}")


def range_text(f: dataclasses.Field[Any]) -> str:
    """``"1..32"``, ``"[0, 0.5)"``, ``">= 1"``, ``"<= 64"`` or ``""`` for a field's declared
    range."""
    low, high = declared_range(f)
    close = ")" if f.metadata.get("high_open", False) else "]"
    if low is not None and high is not None:
        if isinstance(high, int) and close == "]":
            return f"{low:,}..{high:,}"
        return f"[{low:g}, {high:g}{close}"
    if low is not None:
        return f">= {low:,}"
    if high is not None:
        return f"< {high:,}" if close == ")" else f"<= {high:,}"
    return ""


def range_phrase(f: dataclasses.Field[Any]) -> str:
    """``"in 1..32"``, ``"in [0, 0.5)"``, ``">= 1"``: what a value must be, in words."""
    low, high = declared_range(f)
    return f"in {range_text(f)}" if low is not None and high is not None else range_text(f)


def profile_text(f: dataclasses.Field[Any]) -> str:
    """``"tabular 30, image 15"``: a field's defaults by dataset kind, or ``""``."""
    return ", ".join(f"{kind} {value}" for kind, value in f.metadata.get("profile", {}).items())


def profile_of(cls: type, kind: str) -> dict[str, Any]:
    """The defaults the dataclass ``cls`` declares for the dataset kind ``kind`` (``profile=``),
    by field name."""
    return {
        f.name: f.metadata["profile"][kind]
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if kind in f.metadata.get("profile", {})
    }


def matches(value: Any, annotation: Any) -> bool:
    """Whether ``value`` is of the declared type ``annotation``, strictly (a bool is not a
    number, an int is a float; a ``Literal`` is one of its values; containers are checked on
    their kind): what a value given from Python must be, where :func:`coerce` converts text."""
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a) for a in get_args(annotation))
    if origin is Literal:
        return isinstance(value, str | int | bool) and value in get_args(annotation)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (list, dict, tuple):
        return isinstance(value, origin)
    return True


def literal_choices(annotation: Any) -> tuple[Any, ...]:
    """The values of the ``Literal`` in ``annotation`` (``Literal["a", "b"] | None``), or ()."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    if get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(c for a in get_args(annotation) for c in literal_choices(a))
    return ()


def check_fields(instance: Any, what: str = "") -> None:
    """Refuse, in one line naming the field, a field of the dataclass ``instance`` that is not
    of its declared type, outside its declared range or not one of its declared choices (the
    Python API checks what the command line's parsers check). ``what`` prefixes the name."""
    hints = get_type_hints(type(instance))
    for f in dataclasses.fields(instance):
        value, name = getattr(instance, f.name), f"{what}{f.name}"
        annotation = hints[f.name]
        if not matches(value, annotation):
            choices = literal_choices(annotation)
            if choices and (isinstance(value, str) or value is None):
                listed = ", ".join(map(str, choices))
                raise ParamError(f"{name} must be one of {listed}, got {value!r:.60}")
            raise ParamError(
                f"{name} must be of type {type_name(annotation)}, got "
                f"{type(value).__name__} {value!r:.60}"
            )
        check_range(value, f, name)


def coerce(value: Any, annotation: Any, what: str) -> Any:
    """``value`` as the declared type ``annotation``, or a :class:`ParamError` naming ``what``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() == "none")
        if is_none and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(value, arg, what)
            except ParamError:
                continue
        raise ParamError(f"{what} must be {type_name(annotation)}, got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        raise ParamError(f"{what} must be one of {', '.join(map(repr, args))}, got {value!r}")
    if origin is tuple:
        return _tuple(value, args, annotation, what)
    if annotation is bool:
        return _bool(value, what)
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ParamError(f"{what} must be an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ParamError(f"{what} must be a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ParamError(f"{what} must be a string, got {value!r}")
    if annotation is Any:
        return value
    raise TypeError(f"parameter type {annotation!r} is not supported by phyll.params")


def _bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
        return value.lower() in ("true", "yes", "on")
    raise ParamError(f"{what} must be true or false, got {value!r}")


def _tuple(value: Any, args: tuple[Any, ...], annotation: Any, what: str) -> tuple[Any, ...]:
    if isinstance(value, str):
        value = [v for v in value.replace(" ", ",").split(",") if v]
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list | tuple):
        raise ParamError(f"{what} must be {type_name(annotation)}, got {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:
        element_types: list[Any] = [args[0]] * len(value)
    else:
        if len(value) != len(args):
            raise ParamError(f"{what} must be {type_name(annotation)}, got {value!r}")
        element_types = list(args)
    return tuple(coerce(v, t, what) for v, t in zip(value, element_types, strict=True))


def type_name(annotation: Any) -> str:
    """A readable name of a declared type: ``float``, ``int | None``, ``'a' | 'b'``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"tuple[{type_name(args[0])}, ...]"
        return f"tuple[{', '.join(type_name(a) for a in args)}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


@dataclasses.dataclass(frozen=True)
class ParamInfo:
    """One declared parameter, as ``phyll list --params`` prints it."""

    name: str
    type: str
    default: Any
    unit: str
    help: str
    range: str = ""
    #: the defaults by dataset kind (``"tabular 30, image 15"``), where the default is None
    profile: str = ""


def describe_params(cls: type) -> list[ParamInfo]:
    """Every parameter declared by the dataclass ``cls``, in declaration order."""
    hints = get_type_hints(cls)
    return [
        ParamInfo(
            f.name,
            type_name(hints[f.name]),
            f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default,
            f.metadata.get("unit", ""),
            f.metadata.get("help", ""),
            range_text(f),
            profile_text(f),
        )
        for f in dataclasses.fields(cls)
    ]


def as_plain(params: Any) -> dict[str, Any]:
    """The parameters as JSON-ready plain data (tuples become lists)."""
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(params).items()
    }


def check(condition: bool, message: str) -> None:
    """Raise :class:`ParamError` with ``message`` unless ``condition`` (for ``__post_init__``)."""
    if not condition:
        raise ParamError(message)


def finite_positive(value: float) -> bool:
    """True for a finite number > 0 (learning rates, times, sizes)."""
    return math.isfinite(value) and value > 0
