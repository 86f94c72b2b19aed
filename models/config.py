"""Configuration sections owned by the model: `tasks`, `model` and `training` (SPEC §7)."""

from __future__ import annotations

from typing import Literal

import pydantic

from mtlrec.features.config import ConfigSection
from mtlrec.models.tasks.registry import CONFIG_KINDS


class TaskConfig(ConfigSection):
    """One task of the multi-task model."""

    name: str
    """Task name: the key of its outputs, metrics and loss weight."""
    kind: Literal[CONFIG_KINDS]
    """retrieval: two-tower in-batch softmax; binary: ranking head with BCE (ESMM with an
    esmm_parent); regression: MSE. Each kind's rules live in mtlrec.models.tasks."""
    label: str | None = None
    """Declared label (mtlrec.features.declarations.LABELS) this task learns; none for retrieval."""
    weight: float = pydantic.Field(default=1.0, ge=0.0)
    """Fixed weight w_t of this task's loss in the joint loss (used with weighting=fixed)."""
    esmm_parent: str | None = None
    """Binary only: name of the click-like task; p = p_parent * p_this|parent (ESMM, CTCVR loss)."""
    sample_probability: float = pydantic.Field(default=1.0, gt=0.0)
    """Alternating training: relative probability that a step trains this task."""
    retrieval_on_clicks: bool = True
    """Retrieval only: learn from clicked impressions only (positive pairs); false = all rows."""


DEFAULT_TASKS: tuple[TaskConfig, ...] = (
    TaskConfig(name="retrieval", kind="retrieval", weight=1.0),
    TaskConfig(name="click", kind="binary", label="click", weight=1.0),
    TaskConfig(name="purchase", kind="binary", label="purchase", weight=1.0, esmm_parent="click"),
    TaskConfig(name="dwell", kind="regression", label="dwell", weight=0.5),
)


class ModelConfig(ConfigSection):
    """Towers, sharing between ranking heads, and loss weighting."""

    embedding_dim: int = pydantic.Field(default=32, ge=1)
    """Width of the shared user/item id embeddings and of the tower outputs."""
    side_embedding_dim: int = pydantic.Field(default=8, ge=1)
    """Width of side-feature (categorical) embeddings."""
    tower_units: tuple[int, ...] = (64,)
    """Hidden layer widths of the user and item towers (before the output projection)."""
    sharing: Literal["shared_bottom", "mmoe", "ple", "cross_stitch"] = "shared_bottom"
    """How ranking heads share the representation of a (user, item) pair; cross_stitch: one
    MLP column per task mixed by learned cross-stitch units (Misra et al. 2016)."""
    bottom_units: tuple[int, ...] = (64,)
    """shared_bottom: hidden widths of the shared bottom MLP; cross_stitch: of each task's column."""
    num_experts: int = pydantic.Field(default=4, ge=1)
    """mmoe: number of shared experts; ple: shared experts per CGC layer."""
    task_experts: int = pydantic.Field(default=1, ge=1)
    """ple: task-specific experts per task per CGC layer."""
    expert_units: tuple[int, ...] = (32,)
    """mmoe/ple: hidden widths of each expert."""
    ple_levels: int = pydantic.Field(default=2, ge=1)
    """ple: number of stacked CGC layers."""
    head_units: tuple[int, ...] = (16,)
    """Hidden widths of each task's own tower (head)."""
    cross_layers: int = pydantic.Field(default=0, ge=0)
    """DCN-v2 cross layers (tfrs.layers.dcn.Cross) on the pair representation before the
    sharing block: explicit bounded-degree user x item feature crosses; 0 = none."""
    head_dot: bool = False
    """Feed each ranking head the towers' dot product <user, item> beside its sharing output:
    the interaction an MLP approximates poorly (Rendle et al. 2020)."""
    id_bias: bool = False
    """Learned per-user and per-item bias (an embedding of width 1 on the id vocabularies,
    initialised at 0) added to each ranking head's output: sparse users and items fall back to
    the global and item prior. L2-penalised with `training.l2_embedding` like the id tables."""
    retrieval_item_bias: bool = False
    """A learned per-item score bias in the two-tower dot product: the item tower's output
    gains a column b_item (width-1 embedding of item_id, initialised at 0) and the user
    tower's a constant 1, so retrieval scores <user, item> + b_item. With the logQ correction
    the softmax estimates the full one, whose item term is the item's popularity: the bias
    carries it, so a user the towers know little of falls back to the popular items."""
    l2_dense: float = pydantic.Field(default=0.0, ge=0.0)
    """L2 penalty on the dense kernels of the towers, sharing block, cross layers and heads
    (added to the training loss; the id tables use `training.l2_embedding`); 0 = none."""
    weighting: Literal["fixed", "uncertainty"] = "fixed"
    """fixed: sum of w_t * L_t; uncertainty: learned exp(-s_t) * L_t + s_t / 2 (Kendall et al.)."""
    dropout: float = pydantic.Field(default=0.0, ge=0.0, lt=1.0)
    """Dropout rate in towers, experts and heads."""


class TrainingConfig(ConfigSection):
    """Optimisation, checkpoints and distribution."""

    mode: Literal["joint", "alternating"] = "joint"
    """joint: one step on the weighted sum; alternating: each step trains one sampled task."""
    optimizer: Literal["adam", "adagrad", "sgd"] = "adam"
    """Optimizer; sgd uses `momentum`."""
    learning_rate: float = pydantic.Field(default=0.003, gt=0.0)
    """Initial learning rate."""
    lr_schedule: Literal["constant", "cosine", "exponential"] = "constant"
    """Learning-rate schedule over the total number of steps."""
    momentum: float = pydantic.Field(default=0.9, ge=0.0, lt=1.0)
    """sgd only: momentum."""
    l2_embedding: float = pydantic.Field(default=0.003, ge=0.0)
    """L2 penalty on the shared id embedding tables (without it they overfit in 2-3 epochs)."""
    clipnorm: float | None = pydantic.Field(default=5.0, gt=0.0)
    """Global gradient-norm clipping; null = none."""
    batch_size: int = pydantic.Field(default=256, ge=1)
    """Examples per step (global batch across replicas)."""
    epochs: int = pydantic.Field(default=6, ge=0)
    """Passes over the training split (upper bound with early stopping)."""
    steps_per_epoch: int | None = pydantic.Field(default=None, ge=1)
    """Cap on steps per epoch; null = the whole training split."""
    early_stopping_patience: int | None = pydantic.Field(default=2, ge=1)
    """Epochs without improvement of the eval loss before stopping; null = never stop early."""
    steps_per_execution: int = pydantic.Field(default=16, ge=1)
    """Joint steps run per compiled call (as in Keras): fewer Python round trips per step."""
    checkpoint_every_steps: int = pydantic.Field(default=200, ge=1)
    """Steps between checkpoints; a rerun after a crash resumes from the latest one."""
    shuffle_buffer: int = pydantic.Field(default=10_000, ge=1)
    """Shuffle buffer of a streamed split (a split held in memory is shuffled whole)."""
    input_memory_mb: int = pydantic.Field(default=2048, ge=0)
    """Hold the train and eval splits in memory, parsed once, while they fit in this many MB
    together (each worker holds its own copy; loading peaks at twice that); larger splits
    stream from the TFRecords, parsed every epoch. 0 = always stream."""
    seed: int = 42
    """Seed for initialisation, shuffling and task sampling: seeded runs are reproducible."""
    warm_start: str | None = None
    """Start from an earlier model instead of random weights: `last_blessed` (the latest
    blessed run of the workdir) or a run directory; vocabulary rows are carried by id, other
    weights by name and shape (`mtlrec.models.warm_start`). null = a cold start."""
    strategy: Literal["auto", "default", "mirrored", "multi_worker"] = "auto"
    """tf.distribute strategy; auto = multi_worker when TF_CONFIG is set, else default."""
