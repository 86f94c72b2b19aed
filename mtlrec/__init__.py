"""mtlrec: the CLI, the run and its steps, the manifest, the workdir lock and the root config.

The packages by role are mtlrec.features, .pipeline, .datasets, .models, .evaluation and
.deploy. TFRS needs Keras 2, so the legacy Keras switch is set before TensorFlow loads.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
