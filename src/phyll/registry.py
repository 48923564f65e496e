"""Names the command line knows, mapped to what builds them; and ``MODULE:NAME`` import paths.

The only place where the packages meet by name: :data:`SYSTEMS` (the simulated systems of
:mod:`phyll.systems` plus ``remote``, a device served by ``phyll serve``), :data:`RULES` and
:data:`DATASETS`. Everything else takes objects or factories. A name with a colon,
``mylab.driver:Speakers``, is imported: a user's own system class or factory, or rule class,
works wherever a registered name does.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

import torch

from phyll.data import DATASETS
from phyll.errors import ConfigError
from phyll.learning import RULES, LearningRule, model_for
from phyll.network import PhysicalNetwork
from phyll.params import ParamError
from phyll.remote.client import RemoteBlockSystem
from phyll.systems import SYSTEMS as SIMULATED
from phyll.systems.base import PhysicalSystem

SYSTEMS: dict[str, Callable[..., PhysicalSystem]] = {**SIMULATED, "remote": RemoteBlockSystem}

__all__ = [
    "DATASETS",
    "RULES",
    "SYSTEMS",
    "import_object",
    "make_rule",
    "make_system",
    "rule_class",
]


def import_object(path: str, what: str) -> Any:
    """The object ``NAME`` of module ``MODULE`` for ``MODULE:NAME``, or one clear error."""
    module_name, _, name = path.partition(":")
    if not module_name or not name:
        raise ConfigError(f"{what} {path!r}: expected a registered name or MODULE:NAME")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"{what} {path!r}: cannot import module {module_name!r} ({exc})"
        ) from None
    obj = getattr(module, name, None)
    if obj is None:
        raise ConfigError(f"{what} {path!r}: module {module_name!r} has no {name!r}")
    return obj


def system_factory(name: str) -> Callable[..., PhysicalSystem]:
    """The class or factory of the system ``name`` (registered, or ``MODULE:NAME``)."""
    if name in SYSTEMS:
        return SYSTEMS[name]
    if ":" in name:
        factory = import_object(name, "system")
        if not callable(factory):
            raise ConfigError(f"system {name!r} is not a class or function")
        return factory
    raise ConfigError(
        f"unknown system {name!r}; choose one of: {', '.join(sorted(SYSTEMS))}, or MODULE:NAME"
    )


def rule_class(name: str) -> type[LearningRule]:
    """The class of the rule ``name`` (registered, or ``MODULE:NAME`` of a LearningRule)."""
    if name in RULES:
        return RULES[name]
    if ":" in name:
        cls = import_object(name, "rule")
        if not (isinstance(cls, type) and issubclass(cls, LearningRule)):
            raise ConfigError(f"rule {name!r} is not a phyll LearningRule subclass")
        return cls
    raise ConfigError(
        f"unknown rule {name!r}; choose one of: {', '.join(sorted(RULES))}, or MODULE:NAME"
    )


def make_system(
    name: str,
    n_inputs: int,
    n_outputs: int,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    **params: Any,
) -> PhysicalSystem:
    """Build the system ``name`` with the given channel counts, seed, device and parameters.

    A user's factory gets ``n_inputs``, ``n_outputs`` and ``params`` by keyword, and ``seed``
    and ``device`` only if its signature takes them. Unknown parameter names are refused with
    the list of valid ones before anything is built.
    """
    factory = system_factory(name)
    kwargs: dict[str, Any] = {"n_inputs": n_inputs, "n_outputs": n_outputs, **params}
    signature = inspect.signature(factory)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    for key, value in (("seed", seed), ("device", device)):
        if key in signature.parameters or accepts_any:
            kwargs.setdefault(key, value)
    declared = getattr(factory, "Params", None)
    if not accepts_any or declared is None:
        try:
            signature.bind(**kwargs)
        except TypeError:
            valid = [p for p in signature.parameters if p not in ("self", "n_inputs", "n_outputs")]
            raise ParamError(
                f"system {name!r} does not take parameter(s) "
                f"{', '.join(sorted(set(params) - set(valid)))}; valid: {', '.join(valid)}"
            ) from None
    system = factory(**kwargs)
    if not isinstance(system, PhysicalSystem):
        raise ConfigError(
            f"system {name!r} built a {type(system).__name__}, not a phyll PhysicalSystem: "
            "subclass phyll.systems.PhysicalSystem (or wrap your driver in phyll.CallableSystem)"
        )
    return system


def make_rule(
    name: str,
    network: PhysicalNetwork,
    *,
    n_classes: int | None = None,
    seed: int = 0,
    **params: Any,
) -> LearningRule:
    """The rule ``name`` with ``params``, training ``network`` plus the head the rule declares
    (``rule.model``). ``n_classes`` (default: the network's label channels) sizes the head;
    label-free rules with a readout need it."""
    cls = rule_class(name)
    resolved = cls.resolve_params(None, params)
    spec = cls.model_spec(resolved)
    classes = network.n_classes if n_classes is None else n_classes
    if spec.head is not None and classes < 2:
        raise ConfigError(f"rule {name!r} has a head: pass n_classes (the task's classes)")
    return cls(model_for(spec, network, classes, seed), resolved, seed=seed)
