"""report.html rendered by headless Chromium (no network): the page and its plots show up."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from mtlrec.evaluation import report, report_plots

CHROMIUM = pathlib.Path("/usr/bin/chromium")
SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "bench" / "screenshot_report.py"


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed")
def test_report_renders_in_headless_chromium(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    probabilities = np.clip(0.3 + 0.3 * labels + rng.normal(0, 0.2, 300), 0.01, 0.99)
    evaluate = tmp_path / "run" / "evaluate"
    evaluate.mkdir(parents=True)
    (evaluate / "metrics.json").write_text(json.dumps({"click": {"auc": 0.8}}))
    curves = {"click": report_plots.task_curves(labels, probabilities, bins=10)}
    (evaluate / "curves.json").write_text(json.dumps(curves))
    html = report.render_report(tmp_path / "run", primary={"click": "auc"})["html"]

    png = tmp_path / "shot.png"
    subprocess.run(
        [sys.executable, str(SCRIPT), str(html), str(png), "--height", "1600"],
        check=True,
        capture_output=True,
        timeout=180,
    )
    import matplotlib.image

    pixels = matplotlib.image.imread(png)[..., :3]  # floats in [0, 1]
    assert pixels.shape[:2] == (1600, 1280)
    not_white = (pixels < 0.95).any(axis=-1).mean()
    assert not_white > 0.01, "the screenshot is blank"
    # Matplotlib's first line colour (tab:blue, #1f77b4) appears only inside the plots.
    blue = np.abs(pixels - np.array([0x1F, 0x77, 0xB4]) / 255).max(axis=-1) < 0.08
    assert blue.sum() > 200, "the embedded plots did not render"
