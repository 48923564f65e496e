"""A sweep's search space: ``--param NAME=SPEC`` axes, resolved and checked, with no Ray.

An axis names what it varies and how:

* ``NAME=v1,v2,...``: a grid (every value is tried);
* ``NAME=loguniform:a:b``, ``uniform:a:b``: a real number drawn per trial (rounded for integer
  options such as ``width``); ``randint:a:b``: an integer a ≤ n < b (as Ray Tune's ``randint``).

``NAME`` is a training option (a :class:`~phyll.experiments.config.TrainConfig` field: ``width``,
``epochs``, ``seed``, ``rule``, ``dataset``...), ``rule.NAME`` or ``system.NAME`` (a declared
parameter of the rule or system: ``phyll list --params``), or a bare parameter name (``lr``,
``theta``) resolved to the option of that name, else the rule's or the system's parameter. An
unknown or ambiguous name, or a value of the wrong type, is one line listing what is valid.
:func:`apply` turns a trial's values into its configuration; :func:`grid_points` expands the
grids (in the order the axes were given, the last varying fastest).
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, get_type_hints

from phyll.errors import ConfigError
from phyll.experiments.config import TrainConfig
from phyll.params import ParamError, coerce
from phyll.registry import rule_class, system_factory

#: the random distributions an axis can draw from
DISTRIBUTIONS = ("loguniform", "uniform", "randint")
#: TrainConfig fields that are not single values, so not axes
NOT_SWEPT = {"faults", "system_params", "rule_params"}


def _without_none(annotation: Any) -> Any:
    """``int | None`` → ``int`` (an option left unset takes its dataset kind's default; a swept
    value is always set); other annotations as they are."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    optional = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return args[0] if optional and len(args) == 1 else annotation


CONFIG_TYPES = {name: _without_none(t) for name, t in get_type_hints(TrainConfig).items()}


class SpaceError(ConfigError):
    """A ``--param`` axis that cannot be swept (unknown name, bad spec, wrong value type)."""


@dataclass(frozen=True)
class Axis:
    """One swept quantity: ``name`` as written (the key in ``sweep.json``), ``target``
    (``"config"``, ``"rule"`` or ``"system"``), the option or parameter ``field``, its declared
    ``annotation``, and either a ``grid`` of values or a ``distribution`` ``(kind, low, high)``."""

    name: str
    target: str
    field: str
    annotation: Any
    grid: tuple[Any, ...] | None = None
    distribution: tuple[str, float, float] | None = None

    def spec(self) -> dict[str, list[Any]]:
        """The axis as ``sweep.json`` writes it: ``{"grid": [...]}``, ``{"uniform": [a, b]}``..."""
        if self.grid is not None:
            return {"grid": list(self.grid)}
        kind, low, high = self.distribution  # type: ignore[misc]
        return {kind: [low, high]}

    def value(self, raw: Any) -> Any:
        """``raw`` (a grid value or a draw) as the declared type; integers are rounded."""
        if self.annotation is int and isinstance(raw, float):
            raw = round(raw)
        return coerce(raw, self.annotation, f"--param {self.name}")


def valid_names(base: TrainConfig, rules: Sequence[str]) -> list[str]:
    """Every name an axis may take, for messages."""
    options = [f for f in CONFIG_TYPES if f not in NOT_SWEPT]
    rule_names = [f"rule.{n}" for n in _common(rule_params_of(r) for r in rules)]
    return [*options, *rule_names, *(f"system.{n}" for n in system_params_of(base.system))]


def rule_params_of(rule: str) -> dict[str, Any]:
    """The declared parameters of a rule and their types."""
    return get_type_hints(rule_class(rule).Params)


def system_params_of(system: str) -> dict[str, Any]:
    """The declared parameters of a system (none for a factory without ``Params``)."""
    declared = getattr(system_factory(system), "Params", None)
    return get_type_hints(declared) if declared is not None else {}


def _common(groups: Any) -> dict[str, Any]:
    groups = list(groups)
    return {k: v for k, v in groups[0].items() if all(k in g for g in groups[1:])}


def resolve(name: str, base: TrainConfig, rules: Sequence[str]) -> tuple[str, str, Any]:
    """``(target, field, annotation)`` of the axis ``name`` (see module docstring).

    A rule parameter must be declared by every rule in ``rules`` (the rules swept, else the
    base rule).
    """
    rule_params = _common(rule_params_of(r) for r in rules)
    system_params = system_params_of(base.system)
    prefix, dot, bare = name.partition(".")
    if dot and prefix in ("rule", "system"):
        declared = rule_params if prefix == "rule" else system_params
        if bare in declared:
            return prefix, bare, declared[bare]
    elif name in CONFIG_TYPES and name not in NOT_SWEPT:
        return "config", name, CONFIG_TYPES[name]
    elif not dot:
        found = [(t, d) for t, d in (("rule", rule_params), ("system", system_params)) if name in d]
        if len(found) == 1:
            target, declared = found[0]
            return target, name, declared[name]
        if found:
            raise SpaceError(
                f"--param {name} is ambiguous: both rule.{name} and system.{name} exist; "
                "write one of them"
            )
    raise SpaceError(f"--param {name}: unknown name; valid: {', '.join(valid_names(base, rules))}")


def parse_axis(text: str, base: TrainConfig, rules: Sequence[str]) -> Axis:
    """The axis ``NAME=SPEC`` (see module docstring), checked against the declared types."""
    name, sep, spec = (part.strip() for part in text.partition("="))
    if not sep or not name or not spec:
        raise SpaceError(f"--param {text!r}: expected NAME=v1,v2,... or NAME=KIND:LOW:HIGH")
    target, field, annotation = resolve(name, base, rules)
    kind, colon, bounds = spec.partition(":")
    if colon and kind in DISTRIBUTIONS:
        return Axis(
            name,
            target,
            field,
            annotation,
            distribution=_distribution(name, kind, bounds, annotation),
        )
    axis = Axis(name, target, field, annotation)
    values = tuple(axis.value(_literal(v.strip())) for v in spec.split(",") if v.strip())
    if not values:
        raise SpaceError(f"--param {text!r}: no values")
    if len(set(map(repr, values))) < len(values):
        raise SpaceError(f"--param {name}: a value is repeated in {spec!r}")
    return dataclasses.replace(axis, grid=values)


def _distribution(name: str, kind: str, bounds: str, annotation: Any) -> tuple[str, float, float]:
    if annotation not in (int, float):
        raise SpaceError(f"--param {name}: {kind} needs a numeric option, {name} is not one")
    low_text, _, high_text = bounds.partition(":")
    try:
        low, high = float(low_text), float(high_text)
    except ValueError:
        raise SpaceError(f"--param {name}={kind}:{bounds}: expected {kind}:LOW:HIGH") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise SpaceError(f"--param {name}: {kind} needs finite LOW < HIGH, got {low}, {high}")
    if kind == "loguniform" and low <= 0:
        raise SpaceError(f"--param {name}: loguniform needs LOW > 0, got {low}")
    if kind == "randint":
        if not (low.is_integer() and high.is_integer()):
            raise SpaceError(f"--param {name}: randint needs integer bounds, got {low}, {high}")
        return kind, int(low), int(high)
    return kind, low, high


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def parse_space(texts: Sequence[str], base: TrainConfig) -> list[Axis]:
    """The axes of ``--param`` texts; a name given twice is an error."""
    rule_texts = [t for t in texts if t.partition("=")[0].strip() == "rule"]
    rules = [base.rule]
    if rule_texts:
        rules = [r.strip() for r in rule_texts[0].partition("=")[2].split(",") if r.strip()]
        for rule in rules:
            rule_class(rule)  # an unknown rule is named before its parameters are looked up
    axes = [parse_axis(t, base, rules or [base.rule]) for t in texts]
    seen: set[tuple[str, str]] = set()
    for axis in axes:
        if (axis.target, axis.field) in seen:
            raise SpaceError(f"--param {axis.name}: swept twice")
        seen.add((axis.target, axis.field))
    return axes


def grid_points(axes: Sequence[Axis]) -> list[dict[str, Any]]:
    """Every combination of the grid axes (one empty point when there are none)."""
    grids = [a for a in axes if a.grid is not None]
    return [
        {a.name: v for a, v in zip(grids, combo, strict=True)}
        for combo in itertools.product(*(a.grid for a in grids))  # type: ignore[misc]
    ]


def apply(base: TrainConfig, axes: Sequence[Axis], values: dict[str, Any]) -> TrainConfig:
    """The configuration of a trial: ``base`` with each axis set to ``values[axis.name]``."""
    options: dict[str, Any] = {}
    rule_params, system_params = dict(base.rule_params), dict(base.system_params)
    for axis in axes:
        value = axis.value(values[axis.name])
        {"config": options, "rule": rule_params, "system": system_params}[axis.target][
            axis.field
        ] = value
    try:
        return dataclasses.replace(
            base, **options, rule_params=rule_params, system_params=system_params
        )
    except ParamError as exc:
        raise SpaceError(str(exc)) from None


def values_of(config: dict[str, Any], axes: Sequence[Axis]) -> dict[str, Any]:
    """The swept values recorded in a run's configuration (``config.json``)."""
    where = {"config": config, "rule": config["rule_params"], "system": config["system_params"]}
    return {a.name: where[a.target].get(a.field) for a in axes}
