"""One physical system per block, built as the contract says, and fixed-size devices.

A run's systems come from a :class:`SystemSource`: the registry's ``config.system``, or the
factory given to ``phyll.train(..., system_factory=)``, both built by
:func:`phyll.systems.contract.build_system` (keywords ``n_inputs``, ``n_outputs``, ``seed`` =
``1000·seed + block``, ``device``, then ``config.system_params``, where an ``address`` may
list one value per block: :func:`block_params`). The older Python form
``factory(block, n_inputs, n_outputs)`` (three required positional parameters, none named as
in the contract) is still called that way.

**Fixed-size devices** (a factory that takes no sizes, or ``fixed_size = True``): block 0's
device is built first and the network is sized around it: hidden representations as wide as
its inputs (``width``, or a smaller ``--width``), ``measurements`` = its outputs, and the data
and the label channels of the dataset kind's encoding on its inputs (unused ones at zero).
When they do not fit, one line says so and names the remedies. The configuration a run
records holds these sizes, so resuming and loading rebuild the same network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from phyll.data import Dataset
from phyll.errors import ConfigError
from phyll.experiments.config import TrainConfig, dataset_kind, overlay_fits
from phyll.systems.base import PhysicalSystem
from phyll.systems.contract import (
    build_system,
    find_factory,
    is_fixed_size,
    is_positional_factory,
)
from phyll.usercode import user_code

#: system parameters that may name one value per block, comma-separated
PER_BLOCK_PARAMS = ("address",)


def block_params(params: dict[str, Any], block: int, blocks: int) -> dict[str, Any]:
    """Block ``block``'s system parameters: a :data:`PER_BLOCK_PARAMS` value listing one item
    per block, comma-separated (``address=tcp://h1:5555,tcp://h2:5555``), gives each block its
    own (e.g. its own instrument)."""
    own = dict(params)
    for key in PER_BLOCK_PARAMS:
        value = own.get(key)
        if isinstance(value, str) and "," in value:
            items = [item.strip() for item in value.split(",")]
            if len(items) != blocks:
                raise ConfigError(
                    f"system parameter {key} lists {len(items)} values for {blocks} blocks: "
                    "give one per block, or one for all"
                )
            own[key] = items[block]
    return own


@dataclass(frozen=True)
class SystemSource:
    """Where a run's systems come from (see the module docstring).

    Attributes:
        factory: the class or factory.
        name: what messages call it (the registered name, ``MODULE:NAME``, the function's).
        positional: the older form ``factory(block, n_inputs, n_outputs)``.
    """

    factory: Callable[..., Any]
    name: str
    positional: bool = False

    def build(self, block: int, n_inputs: int, n_outputs: int, config: TrainConfig) -> Any:
        """Block ``block``'s system, asked for ``n_inputs`` → ``n_outputs`` channels."""
        if not self.positional:
            return build_system(
                self.factory,
                self.name,
                n_inputs=n_inputs,
                n_outputs=n_outputs,
                seed=1000 * config.seed + block,
                device=config.device,
                params=block_params(config.system_params, block, config.blocks),
            )
        with user_code(f"system {self.name!r}", "building"):
            system = self.factory(block, n_inputs, n_outputs)
        if not isinstance(system, PhysicalSystem):
            raise ConfigError(
                f"system factory {self.name!r} returned a {type(system).__name__}, not a "
                "phyll PhysicalSystem (wrap your driver in phyll.CallableSystem)"
            )
        return system

    def fixed(self, system: PhysicalSystem) -> bool:
        """Whether ``system`` is a fixed-size device."""
        if self.positional:
            return system.fixed_size is True
        return is_fixed_size(self.factory, system)


def system_source(config: TrainConfig, factory: Callable[..., Any] | None) -> SystemSource:
    """The registry's ``config.system``, or the Python ``factory`` when one is given."""
    if factory is None:
        return SystemSource(find_factory(config.system), config.system)
    name = str(getattr(factory, "__qualname__", None) or type(factory).__name__)
    return SystemSource(factory, name, is_positional_factory(factory))


def build_systems(
    source: SystemSource,
    config: TrainConfig,
    dataset: Dataset,
    n_labels: int,
    overlay: bool,
    check_memory: Callable[[TrainConfig], None] = lambda config: None,
) -> tuple[list[PhysicalSystem], TrainConfig]:
    """Every block's system (unwrapped) and ``config`` with the sizes it has: those of a
    fixed-size device, else as given. ``n_labels`` label channels enter block 0's drive
    unless the labels are written into the images (``overlay``). ``check_memory`` refuses
    the sizes of a fixed-size device (e.g. a served one's greeting) that would not fit in
    memory, before anything else is built around it."""
    first_inputs = dataset.n_features + (0 if overlay else n_labels)
    first = source.build(0, first_inputs, config.measurements, config)
    if source.fixed(first):
        config = sized_around(first, source.name, config)
        check_fits(first, source.name, config, dataset, n_labels, overlay)
        check_memory(config)
    systems = [first]
    for block in range(1, config.blocks):
        system = source.build(block, config.width, config.measurements, config)
        if source.fixed(first) and (system.n_inputs, system.n_outputs) != (
            first.n_inputs,
            first.n_outputs,
        ):
            raise ConfigError(
                f"system {source.name!r} built {system.n_inputs} → {system.n_outputs} channels "
                f"for block {block} but {first.n_inputs} → {first.n_outputs} for block 0: a "
                "fixed-size device has the same channels in every block"
            )
        systems.append(system)
    return systems, config


def sized_around(device: PhysicalSystem, name: str, config: TrainConfig) -> TrainConfig:
    """``config`` with the fixed-size ``device``'s sizes: ``width`` its inputs (a smaller
    width given by the user is kept: unused drive channels stay at zero), ``measurements`` its
    outputs. A value the user set that the device cannot have is refused in one line."""
    profile = TrainConfig(dataset=config.dataset, system=config.system)  # the defaults
    width = device.n_inputs if config.width == profile.width else config.width
    measurements = (
        device.n_outputs if config.measurements == profile.measurements else config.measurements
    )
    sizes = f"system {name!r} is a fixed-size device ({device.n_inputs} → {device.n_outputs})"
    if width > device.n_inputs:
        raise ConfigError(
            f"{sizes}: --width {width} does not fit its {device.n_inputs} drive channels; "
            f"leave --width out (it is then {device.n_inputs}) or give at most that"
        )
    if measurements != device.n_outputs:
        raise ConfigError(
            f"{sizes}: it measures {device.n_outputs} channels, not --measurements "
            f"{measurements}; leave --measurements out"
        )
    return dataclasses.replace(config, width=width, measurements=measurements)


def check_fits(
    device: PhysicalSystem,
    name: str,
    config: TrainConfig,
    dataset: Dataset,
    n_labels: int,
    overlay: bool,
) -> None:
    """Refuse data (and label channels) that do not fit the fixed-size device's inputs, in
    one line naming the remedies."""
    labels = 0 if overlay else n_labels
    need = dataset.n_features + labels
    if need <= device.n_inputs:
        return
    remedies = [f"a device with at least {need} drive channels"]
    if labels:
        remedies.append("a rule whose labels do not drive the device (--rule phyll-unsup)")
    if dataset_kind(config.dataset) == "image":
        remedies.append("smaller images (--dataset NAME:HxW, e.g. mnist5k:4x4)")
        if labels and dataset.image_shape is not None and overlay_fits(config.dataset):
            remedies.append("the labels written into the images (--label-encoding overlay)")
    parts = f"{dataset.n_features} features" + (f" + {labels} label channels" if labels else "")
    raise ConfigError(
        f"dataset {dataset.name!r} needs {need} drive channels ({parts}), but system "
        f"{name!r} is a fixed-size device with {device.n_inputs}: use " + ", or ".join(remedies)
    )
