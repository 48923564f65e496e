"""What a pipelined run needs before it starts: whether it can pipeline, and its engine.

:func:`check_pipeline` refuses, in one line, what cannot run on one actor per block;
:func:`pipelined_engine` builds the :class:`~phyll.experiments.pipeline.trainer.PipelineEngine`
of a built experiment: one :class:`~phyll.experiments.pipeline.worker.WorkerSpec` per block, in
which the block's physical system is *rebuilt in the actor* from the experiment's
:class:`~phyll.experiments.sizing.SystemSource` (so a remote instrument is driven from there,
and one address per block gives every actor its own instrument). The systems built in this
process stay as the driver's copy of the systems' state (counters, noise streams) and are
never driven.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from typing import Any

import torch

from phyll.errors import ConfigError
from phyll.experiments.build import Experiment, with_faults
from phyll.experiments.config import TrainConfig
from phyll.experiments.pipeline.actors import Pipeline, ray_module
from phyll.experiments.pipeline.trainer import PipelineEngine
from phyll.experiments.pipeline.worker import WorkerSpec
from phyll.experiments.sizing import SystemSource
from phyll.learning.base import LearningRule
from phyll.learning.blockwise import BlockwiseRule
from phyll.learning.local import LocalContrastiveRule
from phyll.registry import rule_class
from phyll.systems.base import PhysicalSystem

#: fault wrappers the driver arms or reads during a run (robustness experiments)
DRIVER_FAULTS = ("drift", "step")
#: consecutive steps one actor task trains at most: Ray's overhead per task (a millisecond or
#: more of CPU in the driver and the actor on a busy 2-core machine) is paid once per chunk;
#: the pipeline fills once per run (epochs flow into each other), with chunks of 1, 2, 4 steps
CHUNK = 8
#: chunks in flight per block (one ahead in each block, plus slack)
WINDOW_PER_BLOCK = 2


def pipeline_refusal(rule: type[LearningRule]) -> str | None:
    """Why ``rule`` cannot train on one actor per block (None: it can)."""
    name = getattr(rule, "name", rule.__name__)
    if not issubclass(rule, BlockwiseRule):
        if not rule.model_free:
            return (
                f"rule {name!r} cannot pipeline: after each forward pass through the blocks it "
                "runs a backward pass through every block, so no block can take the next "
                "minibatch before the gradient has come back from the last one"
            )
        return f"rule {name!r} does not train block by block"
    if rule.block_objective is LocalContrastiveRule.block_objective:
        return (
            f"rule {name!r} keeps its local loss in a method of the rule: give it a "
            "block_objective() a worker can hold (phyll.learning.blockwise)"
        )
    if rule.setup is not LearningRule.setup:
        return f"rule {name!r} has a setup() that drives the physics from the driver"
    return None


def sequential_if_needed(config: TrainConfig) -> TrainConfig:
    """``config``, trained sequentially when its rule cannot pipeline (PAT, backprop, the
    controls): what the runs of an experiment (``phyll compare``, ``phyll sweep``) asked to
    pipeline do with such an entry; their run folders say ``"pipeline": "none"``."""
    if config.pipeline == "none" or not pipeline_refusal(rule_class(config.rule)):
        return config
    return dataclasses.replace(config, pipeline="none", pipeline_sync=False)


def check_pipeline(config: TrainConfig, exp: Experiment) -> None:
    """Refuse, in one line, a run that ``--pipeline ray`` cannot train (before anything is
    written); a missing Ray says how to install the extra."""
    if config.pipeline == "none":
        return
    reason = pipeline_refusal(type(exp.rule))
    if reason:
        raise ConfigError(f"--pipeline {config.pipeline}: {reason}; train it without --pipeline")
    if torch.device(config.device).type != "cpu":
        raise ConfigError(
            f"--pipeline {config.pipeline} runs the blocks on CPU actors; use --device cpu"
        )
    if config.record:
        raise ConfigError(f"--record is not available with --pipeline {config.pipeline}")
    moving = sorted({f["name"] for f in config.faults} & set(DRIVER_FAULTS))
    if moving:
        raise ConfigError(
            f"--pipeline {config.pipeline}: the fault(s) {', '.join(moving)} are armed and read "
            "by the driver; run them without --pipeline"
        )
    ray_module()


def build_block_system(
    source: SystemSource, config: TrainConfig, index: int, n_inputs: int, n_outputs: int
) -> PhysicalSystem:
    """Block ``index``'s system with its faults, as :func:`~phyll.experiments.build.
    build_experiment` builds it (called in the block's actor)."""
    return with_faults(source.build(index, n_inputs, n_outputs, config), config, index)


def worker_specs(exp: Experiment) -> list[WorkerSpec]:
    """One worker spec per block of ``exp``."""
    config, rule = exp.config, exp.rule
    assert isinstance(rule, BlockwiseRule) and exp.system_source is not None
    specs = []
    for i, (block, optimizer) in enumerate(zip(exp.model.blocks, rule.optimizers, strict=True)):
        bare = copy.deepcopy(block, memo={id(block.system): None})  # the system stays here
        build = functools.partial(
            build_block_system,
            exp.system_source,
            config,
            i,
            block.in_features,
            config.measurements,
        )
        defaults = dict(optimizer.defaults)
        specs.append(
            WorkerSpec(
                i,
                bare,
                build,
                type(optimizer),
                defaults,
                rule.block_objective(i),
                torch.get_num_threads(),
            )
        )
    return specs


def pipelined_engine(exp: Experiment, config: TrainConfig, **engine_kwargs: Any) -> PipelineEngine:
    """The engine of ``exp`` with every block on its own Ray actor (not started yet)."""
    for system in exp.systems:  # the driver's copies are never driven: no open connections
        close = getattr(system, "close", None)
        if callable(close):
            close()
    pipeline = Pipeline(worker_specs(exp), config.ray_address, serial=config.pipeline_sync)
    return PipelineEngine(
        exp.model,
        exp.rule,
        exp.splits,
        pipeline=pipeline,
        checkpoint_every=config.checkpoint_every,
        chunk=CHUNK,
        window=WINDOW_PER_BLOCK * CHUNK * len(exp.model.blocks),
        restarts=config.pipeline_restarts,
        **engine_kwargs,
    )
