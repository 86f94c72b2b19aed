"""Renders an evaluation report.html with headless Chromium and saves a PNG screenshot.

Usage: python bench/screenshot_report.py RUN_DIR/evaluate/report.html [out.png]

Chromium runs with networking disabled (every host resolves to nothing), so the screenshot
shows exactly what the self-contained file holds: if a plot needed the network it would be
missing from the picture. Install Chromium with `apt-get install -y chromium` (Debian).
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import tempfile

CHROMIUM = pathlib.Path("/usr/bin/chromium")


def screenshot(
    html_path: pathlib.Path, png_path: pathlib.Path, *, width: int = 1280, height: int = 4000
) -> pathlib.Path:
    """Writes a screenshot of `html_path` to `png_path` and returns it.

    Raises:
      FileNotFoundError: Chromium or the HTML file is missing.
      RuntimeError: Chromium exited without writing the screenshot.
    """
    if not CHROMIUM.exists():
        raise FileNotFoundError(f"{CHROMIUM} not found; install it with apt-get install chromium")
    html_path = pathlib.Path(html_path).resolve()
    if not html_path.is_file():
        raise FileNotFoundError(f"report not found: {html_path}")
    png_path = pathlib.Path(png_path).resolve()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={profile}",
            f"--screenshot={png_path}",
            f"--window-size={width},{height}",
            html_path.as_uri(),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if not png_path.exists():
        raise RuntimeError(
            f"chromium wrote no screenshot (exit {result.returncode}): {result.stderr}"
        )
    return png_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=pathlib.Path, help="path of report.html")
    parser.add_argument("out", type=pathlib.Path, nargs="?", help="PNG to write (default: beside)")
    parser.add_argument("--width", type=int, default=1280, help="window width in pixels")
    parser.add_argument("--height", type=int, default=4000, help="window height in pixels")
    args = parser.parse_args(argv)
    out = args.out or args.report.with_suffix(".png")
    print(screenshot(args.report, out, width=args.width, height=args.height))
    return 0


if __name__ == "__main__":
    sys.exit(main())
