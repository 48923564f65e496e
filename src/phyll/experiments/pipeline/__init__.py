"""Block-parallel training on Ray (``--pipeline ray``, the optional extra ``.[ray]``): every block
of a local rule's network on its own actor, minibatches flowing through them as a pipeline.

* :mod:`~phyll.experiments.pipeline.setup`: what can pipeline, and the run's engine;
* :mod:`~phyll.experiments.pipeline.trainer`: the pipelined training loop and why it is exact;
* :mod:`~phyll.experiments.pipeline.actors`: Ray, the pool of block actors, one run's actors;
* :mod:`~phyll.experiments.pipeline.worker`: what one block's actor holds and does;
* :mod:`~phyll.experiments.pipeline.timeline`: each actor's busy and idle time.

See docs/pipeline.md.
"""

from __future__ import annotations

from phyll.experiments.pipeline.actors import ActorDied, Pipeline, PipelineError
from phyll.experiments.pipeline.setup import (
    check_pipeline,
    pipeline_refusal,
    pipelined_engine,
    sequential_if_needed,
)
from phyll.experiments.pipeline.timeline import Timeline, plot_timeline
from phyll.experiments.pipeline.trainer import PipelineEngine

__all__ = [
    "ActorDied",
    "Pipeline",
    "PipelineEngine",
    "PipelineError",
    "Timeline",
    "check_pipeline",
    "pipeline_refusal",
    "pipelined_engine",
    "plot_timeline",
    "sequential_if_needed",
]
