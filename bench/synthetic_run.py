"""A preprocessed synthetic run, shared by the train, serving and quality benchmarks.

Synthetic logs (`mtlrec.datasets.synthetic.generate`) go through the product's own validate and preprocess
steps. With a kept work directory (`--workdir`), a finished run of the same size is reused,
so several benchmarks can share one preprocessing.
"""

from __future__ import annotations

import json
import pathlib
import shutil

# Preparation is not what these benchmarks measure: one in-process Beam worker starts fastest.
PREP_BEAM_ARGS = ("--runner=FnApiRunner",)
SEED = 3


def prepare(work: pathlib.Path, users: int, days: int) -> tuple[pathlib.Path, dict]:
    """(preprocess step dir, truth.json) of a synthetic run of `users` over `days`."""
    from mtlrec.config import validate
    from mtlrec.datasets.synthetic.generate import generate
    from mtlrec.pipeline.preprocess import COUNTS_JSON, run_preprocess, run_validate

    root = pathlib.Path(work) / f"synthetic-u{users}-d{days}"
    raw, preprocess = root / "data", root / "preprocess"
    if (preprocess / COUNTS_JSON).exists():
        return preprocess, json.loads((raw / "truth.json").read_text())
    if raw.exists():
        # A run interrupted before preprocessing finished: start it again from scratch.
        shutil.rmtree(root)
    items = max(50, users // 2)
    truth = generate(raw, users=users, items=items, days=days, seed=SEED, progress=False)
    config = validate({"data": {"raw_dir": str(raw)}, "runner": {"beam_args": PREP_BEAM_ARGS}})
    run_validate(config.job_config(), raw, root / "validate")
    run_preprocess(config.job_config(), root / "validate", preprocess)
    return preprocess, truth
