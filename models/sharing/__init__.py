"""Sharing between ranking heads: `shared_bottom`, `mmoe`, `ple` or `cross_stitch`, as blocks.

Every block maps the pair representation [B, d] to one representation per ranking task
(`dict[task_name, Tensor]`) and names the variables only one task uses
(`task_variables`), so alternating training can leave the other tasks untouched.
"""

from __future__ import annotations

import tensorflow as tf

from mtlrec.models.config import ModelConfig
from mtlrec.models.sharing.cross_stitch import CrossStitch
from mtlrec.models.sharing.mmoe import MMoE
from mtlrec.models.sharing.ple import PLE
from mtlrec.models.sharing.shared_bottom import SharedBottom


def build_sharing(cfg: ModelConfig, task_names: tuple[str, ...]) -> tf.keras.layers.Layer:
    """The sharing block selected by `model.sharing` for the given ranking tasks."""
    if cfg.sharing == "shared_bottom":
        return SharedBottom(task_names, cfg.bottom_units, dropout=cfg.dropout, l2=cfg.l2_dense)
    if cfg.sharing == "cross_stitch":
        return CrossStitch(task_names, cfg.bottom_units, dropout=cfg.dropout, l2=cfg.l2_dense)
    if cfg.sharing == "mmoe":
        return MMoE(
            task_names, cfg.num_experts, cfg.expert_units, dropout=cfg.dropout, l2=cfg.l2_dense
        )
    return PLE(
        task_names,
        cfg.ple_levels,
        cfg.num_experts,
        cfg.task_experts,
        cfg.expert_units,
        dropout=cfg.dropout,
        l2=cfg.l2_dense,
    )


__all__ = ["PLE", "CrossStitch", "MMoE", "SharedBottom", "build_sharing"]
