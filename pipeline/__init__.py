"""Beam jobs, orchestration and the mtlrec CLI.

TFRS needs Keras 2, so the legacy Keras switch is set before TensorFlow loads.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
