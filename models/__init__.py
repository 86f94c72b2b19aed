"""The TFRS multi-task model: towers, sharing blocks, task kinds, weighting and training."""
