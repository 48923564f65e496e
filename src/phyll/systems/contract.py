"""The system contract: one way to name and build a physical system, whichever way it enters.

``--system MODULE:NAME``, ``phyll.train(..., system_factory=)``, ``phyll serve`` and the
registry all build a system the same way (:func:`build_system`). A system is a class or a
factory (any callable returning a :class:`~phyll.systems.base.PhysicalSystem`), called with
keywords:

1. ``n_inputs``, ``n_outputs`` (the channels the network asks for) and ``seed``;
2. ``device`` (the run's torch device), if the factory names it;
3. then its own parameters (``--system-param KEY=VALUE``), checked against what it takes.

A name the factory does not take is not passed; a required one phyll cannot give is a one-line
error naming it. A factory that takes neither ``n_inputs`` nor ``n_outputs``, or a system
whose ``fixed_size`` is True, is a *fixed-size device*: the network is sized around it
(:mod:`phyll.experiments.build`). Whatever the user's code raises while it builds is one line
naming the system (:func:`phyll.usercode.user_code`).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from phyll.errors import ConfigError
from phyll.params import ParamError
from phyll.systems.base import PhysicalSystem
from phyll.systems.registered import SYSTEMS, registered_factory
from phyll.usercode import import_object, user_code

#: the names phyll itself passes, when the factory takes them
STANDARD = ("n_inputs", "n_outputs", "seed", "device")
SIZES = ("n_inputs", "n_outputs")


@dataclass(frozen=True)
class Accepts:
    """What a factory takes by keyword.

    Attributes:
        names: the keyword names it takes (a declared ``Params``' fields included when it
            gathers them with ``**overrides``).
        open: it takes ``**kwargs`` and declares no ``Params``: any name.
        required: the names without a default.
        positional: its required positional parameters, in order (the older Python form
            ``(block, n_inputs, n_outputs)`` is recognised from these).
    """

    names: frozenset[str]
    open: bool
    required: tuple[str, ...]
    positional: tuple[str, ...]


def accepts(factory: Callable[..., Any]) -> Accepts:
    """What ``factory`` takes (a callable whose signature Python cannot read takes anything)."""
    try:
        parameters = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return Accepts(frozenset(), True, (), ())
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    names = {p.name for p in parameters if p.kind in keyword}
    gathers = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    declared = getattr(factory, "Params", None)
    if gathers and dataclasses.is_dataclass(declared):
        names |= {f.name for f in dataclasses.fields(declared)}
    return Accepts(
        frozenset(names),
        gathers and not dataclasses.is_dataclass(declared),
        tuple(p.name for p in parameters if p.kind in keyword and p.default is p.empty),
        tuple(p.name for p in parameters if p.kind in positional and p.default is p.empty),
    )


def declares_fixed_size(factory: Callable[..., Any]) -> bool:
    """True for a factory that sizes its device itself: it takes neither ``n_inputs`` nor
    ``n_outputs``, or it is a class whose ``fixed_size`` is True."""
    if getattr(factory, "fixed_size", False) is True:
        return True
    taken = accepts(factory)
    return not taken.open and not (taken.names & set(SIZES))


def is_positional_factory(factory: Callable[..., Any]) -> bool:
    """The older Python form ``factory(block, n_inputs, n_outputs)``: exactly three required
    positional parameters, none of them a name of the contract."""
    taken = accepts(factory)
    return len(taken.positional) == 3 and not set(taken.positional) & set(STANDARD)


def find_factory(name: str) -> Callable[..., Any]:
    """The class or factory of the system ``name``: registered (an installed package's entry
    point included) or ``MODULE:NAME`` (imported)."""
    factory = registered_factory(name)
    if factory is None and ":" in name:
        factory = import_object(name, "system")
    if factory is None:
        raise ConfigError(SYSTEMS.unknown(name))
    if not callable(factory):
        raise ConfigError(f"system {name!r} is not a class or function")
    return factory


def build_system(
    factory: Callable[..., Any],
    name: str,
    *,
    n_inputs: int | None = None,
    n_outputs: int | None = None,
    seed: int | None = None,
    device: str | torch.device | None = None,
    params: Mapping[str, Any] | None = None,
) -> PhysicalSystem:
    """``factory`` called as the contract says (module docstring); ``name`` is what messages
    call it. A standard value given as None is not passed (its default applies); a fixed-size
    factory is never given sizes."""
    taken = accepts(factory)
    standard: dict[str, Any] = {"n_inputs": n_inputs, "n_outputs": n_outputs, "seed": seed}
    if declares_fixed_size(factory):
        standard = {"seed": seed}
    kwargs = {
        key: value
        for key, value in {**standard, "device": device}.items()
        if value is not None and (key in taken.names or (taken.open and key != "device"))
    }
    given = dict(params or {})
    unknown = sorted(set(given) - taken.names) if not taken.open else []
    if unknown:
        valid = sorted(taken.names - set(STANDARD) - {"params"})
        raise ParamError(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))} for system {name!r}; valid: "
            f"{', '.join(valid) or '(none)'}"
        )
    kwargs.update(given)
    missing = [n for n in taken.required if n not in kwargs]
    if missing:
        raise ParamError(
            f"system {name!r} needs parameter {missing[0]!r}, which phyll does not pass (it "
            f"passes {', '.join(STANDARD[:3])} by these names): set it as a system "
            f"parameter, {missing[0]}=VALUE"
        )
    with user_code(f"system {name!r}", "building"):
        system = factory(**kwargs)
    if not isinstance(system, PhysicalSystem):
        raise ConfigError(
            f"system {name!r} built a {type(system).__name__}, not a phyll PhysicalSystem: "
            "subclass phyll.systems.PhysicalSystem (or wrap your driver in phyll.CallableSystem)"
        )
    return system


def is_fixed_size(factory: Callable[..., Any], system: PhysicalSystem) -> bool:
    """Whether ``system``, built by ``factory``, has sizes of its own (see the module
    docstring): the network is then sized around it."""
    return declares_fixed_size(factory) or getattr(system, "fixed_size", False) is True
