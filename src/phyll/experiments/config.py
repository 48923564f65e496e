"""The resolved configuration of one training run (what ``phyll train`` options map to)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainConfig:
    """Everything that defines a run; saved as ``config.json`` in the run folder.

    Architecture: ``blocks`` physical blocks; each system has ``measurements`` output channels
    and hidden representations have ``width`` features (= drive channels of the next system).
    """

    dataset: str = "vowels"
    system: str = "acoustic"
    rule: str = "phyll"
    seed: int = 0
    epochs: int = 30
    batch_size: int = 32
    blocks: int = 2
    width: int = 64
    measurements: int = 128
    lr: float = 1e-2
    skip: bool = True
    use_physics: bool = True
    conditioning: str = "standardize"
    activation: str = "abs"
    val_fraction: float = 0.15
    train_eval_samples: int = 512
    data_path: str | None = None
    device: str = "cpu"
    #: write a checkpoint every this many training steps (0: at epoch ends only); epoch ends
    #: and Ctrl-C/SIGTERM always checkpoint
    checkpoint_every: int = 100
    #: record every drive/measurement pair to DIR/records (see phyll.systems.recording)
    record: bool = False
    system_params: dict[str, Any] = field(default_factory=dict)
    rule_params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "blocks", "width", "measurements")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in [0, 0.5), got {self.val_fraction}")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        return cls(**data)
