"""The experiment kinds: the one table the command line and ``phyll report`` read.

A new kind is one module defining an :class:`~phyll.experiments.protocol.ExperimentKind`
(``KIND``) and one line here; :mod:`phyll.experiments.runner` gives it the command
``phyll NAME`` (with ``--resume`` and ``--trust-code``), its folder's marker, resuming,
Ctrl-C, executors and ``OUT/NAME.json``, and ``phyll report`` finds it by its format marker.
"""

from __future__ import annotations

from phyll.experiments import compare, depth, frontier, robustness, sweep
from phyll.experiments.protocol import ExperimentKind

#: every experiment kind by name, in the order ``phyll --help`` lists them
EXPERIMENT_KINDS: dict[str, ExperimentKind] = {
    kind.name: kind
    for kind in (compare.KIND, frontier.KIND, robustness.KIND, depth.KIND, sweep.KIND)
}
