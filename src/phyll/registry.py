"""Names the command line knows, mapped to what builds them; and ``MODULE:NAME`` import paths.

The only place where the packages meet by name: :data:`SYSTEMS`, :data:`RULES`,
:data:`DATASETS` and :data:`FAULTS`, each a :class:`~phyll.plugins.Registry` defined next to
what it names (:mod:`phyll.systems.registered`, :mod:`phyll.learning`,
:mod:`phyll.data.registered`, :mod:`phyll.systems.faults`) and re-exported here. Everything
else takes objects or factories. A name with a colon, ``mylab.driver:Speakers``, is imported:
a user's own system class or factory, or rule class, works wherever a registered name does.
A name read from a file (a run folder, an experiment's record) is imported only with the
user's consent (:func:`check_recorded_names`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from phyll.data import DATASETS
from phyll.errors import ConfigError
from phyll.learning import RULES, LearningRule, model_for
from phyll.network import PhysicalNetwork
from phyll.systems import SYSTEMS, PhysicalSystem, build_system, find_factory, system_names
from phyll.systems.faults import FAULTS
from phyll.systems.registered import is_registered
from phyll.usercode import Trust, check_recorded, import_object

#: the mark of a dataset or system a run was given as a Python object (nothing to import)
PYTHON = "python:"

__all__ = [
    "DATASETS",
    "FAULTS",
    "PYTHON",
    "RULES",
    "SYSTEMS",
    "check_recorded_names",
    "make_rule",
    "make_system",
    "needs_trust",
    "rule_class",
    "system_factory",
    "system_names",
]


def system_factory(name: str) -> Callable[..., PhysicalSystem]:
    """The class or factory of the system ``name`` (registered, or ``MODULE:NAME``)."""
    return find_factory(name)


def rule_class(name: str) -> type[LearningRule]:
    """The class of the rule ``name`` (registered, or ``MODULE:NAME`` of a LearningRule)."""
    if ":" in name and name not in RULES:
        cls = import_object(name, "rule")
        if not (isinstance(cls, type) and issubclass(cls, LearningRule)):
            raise ConfigError(f"rule {name!r} is not a phyll LearningRule subclass")
        return cls
    return RULES[name]


def needs_trust(system: str, rule: str) -> bool:
    """Whether building this system and rule from a record imports code from outside phyll
    (so resuming needs ``--trust-code``)."""
    return not ((is_registered(system) or system.startswith(PYTHON)) and rule in RULES)


def check_recorded_names(system: Any, rule: Any, trust: Trust, where: str) -> None:
    """Refuse a ``system`` or ``rule`` recorded in ``where`` that would import code the user
    has not trusted (:func:`phyll.usercode.check_recorded`), before anything is imported."""
    for what, name, known in (
        ("system", system, lambda n: is_registered(n) or n.startswith(PYTHON)),
        ("rule", rule, lambda n: n in RULES),
    ):
        if not isinstance(name, str):
            raise ConfigError(f"{where} records a {what} that is not a name: {name!r}")
        check_recorded(what, name, known, trust, where)


def make_system(
    name: str,
    n_inputs: int | None = None,
    n_outputs: int | None = None,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    **params: Any,
) -> PhysicalSystem:
    """Build the system ``name`` as the contract says (:mod:`phyll.systems.contract`):
    ``n_inputs``, ``n_outputs``, ``seed``, ``device`` (where the factory takes them) and
    ``params``, checked before anything is built. A fixed-size device keeps its own sizes."""
    return build_system(
        find_factory(name),
        name,
        n_inputs=n_inputs,
        n_outputs=n_outputs,
        seed=seed,
        device=device,
        params=params,
    )


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
