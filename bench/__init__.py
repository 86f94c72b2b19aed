"""Benchmarks (SPEC §12): each module runs with `python -m bench.NAME` or `mtlrec bench NAME`.

Every benchmark compares against a baseline measured in the same run, prints a table and
writes `bench/results/<name>.json`. TFRS needs Keras 2, so the legacy Keras switch is set
before TensorFlow loads.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
