"""What every benchmark shares: tables, JSON results, statistics and measured child processes.

Variants that compete on speed or memory run in their own child process (`run_child`), so
each one's peak memory is its own and no variant warms a cache for the next.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
CHILD_MARKER = "BENCH_RESULT "
_PEAK_KEY = "_peak_rss_mb"
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def fmt(value: object) -> str:
    """A table cell: floats with 4 significant digits, large ones with thousands separators."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if abs(value) >= 10_000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (readable in a terminal, pasteable into the README)."""
    cells = [[fmt(v) for v in row] for row in rows]
    for row in cells:
        if len(row) != len(columns):
            raise ValueError(f"table {title!r}: row {row} has {len(row)} cells, expected {columns}")
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    line = "| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) + " |" for r in cells
    ]
    return "\n".join([f"### {title}", "", line, rule, *body])


def write_results(
    name: str, payload: dict, results_dir: pathlib.Path | None = None
) -> pathlib.Path:
    """Write `<results_dir>/<name>.json` with the payload plus when, where and how it ran."""
    out_dir = results_dir or RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": name,
        "command": " ".join(["python", "-m", f"bench.{name}", *sys.argv[1:]]),
        "finished_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **payload,
    }
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    return path


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    if not values:
        raise ValueError("mean_std needs at least one value")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation, as numpy's default."""
    if not values or not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile needs values and 0 <= q <= 100 (got {len(values)}, {q})")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p99/mean latency in ms and sequential throughput (calls/s) of timed calls."""
    return {
        "p50_ms": percentile(seconds, 50) * 1e3,
        "p99_ms": percentile(seconds, 99) * 1e3,
        "mean_ms": sum(seconds) / len(seconds) * 1e3,
        "calls_per_s": len(seconds) / sum(seconds),
    }


@dataclasses.dataclass(frozen=True)
class ChildRun:
    """A finished child process: what it reported and what it cost."""

    result: dict
    seconds: float
    peak_rss_mb: float
    """Peak resident memory of the child process itself (its VmHWM)."""
    peak_tree_rss_mb: float
    """Largest sampled sum of resident sets over the child and all its descendants."""


def own_peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM) since its exec, in MiB."""
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("/proc/self/status has no VmHWM line: peak memory needs Linux procfs")


def emit_child_result(result: dict) -> None:
    """Report a child's result (and its own peak memory) to `run_child` on stdout."""
    print(CHILD_MARKER + json.dumps({**result, _PEAK_KEY: own_peak_rss_mb()}), flush=True)


def _children_by_parent() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = pathlib.Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces; the fields after its closing ")" do not.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def tree_rss_bytes(root_pid: int) -> int:
    """Sum of resident memory of a process and all its descendants (0 once it is gone)."""
    tree = _children_by_parent()
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        try:
            pages = int(pathlib.Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        total += pages * _PAGE_BYTES
        stack.extend(tree.get(pid, []))
    return total


def run_child(
    module: str,
    args: Sequence[str],
    *,
    timeout_s: float = 3600.0,
    sample_every_s: float = 0.25,
) -> ChildRun:
    """Run `python -m module args...`, sample its memory, and return its reported result.

    The child must call `emit_child_result` once. A failing child raises RuntimeError with
    the tail of its stderr, so a broken variant is never reported as a number.
    """
    argv = [sys.executable, "-m", module, *args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err)
        peak_tree = 0
        # Sampled from outside: a forked child's ru_maxrss starts at the parent's size.
        while proc.poll() is None:
            peak_tree = max(peak_tree, tree_rss_bytes(proc.pid))
            if time.perf_counter() - start > timeout_s:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"{' '.join(argv)} ran over {timeout_s:.0f} s and was killed")
            time.sleep(sample_every_s)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-25:])
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{tail}")
    reported = [line for line in stdout.splitlines() if line.startswith(CHILD_MARKER)]
    if len(reported) != 1:
        raise RuntimeError(f"{' '.join(argv)} reported {len(reported)} results, expected one")
    result = json.loads(reported[0][len(CHILD_MARKER) :])
    peak_rss_mb = result.pop(_PEAK_KEY)
    return ChildRun(
        result=result,
        seconds=seconds,
        peak_rss_mb=peak_rss_mb,
        peak_tree_rss_mb=max(peak_tree / 2**20, peak_rss_mb),
    )
