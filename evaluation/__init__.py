"""Offline evaluation: streamed predictions, metrics by task and slice, baselines, the blessing gate and the HTML report."""
