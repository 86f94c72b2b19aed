"""Raw log contract, feature declarations and the tf.Transform preprocessing_fn.

TFRS needs Keras 2, so the legacy Keras switch is set before TensorFlow loads.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
