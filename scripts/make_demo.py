"""Write the synthetic demo recordings the analyzer offers when no recording is at hand.

    python scripts/make_demo.py [--folder data/demo]

Three 20 s, 8 kHz, 16-bit WAV files made by ``auscult.synthetic`` (deterministic, so every
machine gets the same bytes): a normal 72 bpm heart sound, one with a systolic murmur at
88 bpm, and a normal one under heavy noise. The folder defaults to ``<work_dir>/demo``
(``data/demo``; set ``AUSCULT_WORK_DIR`` to move it). Running it again rewrites nothing that
is already correct. These are test signals, not patient recordings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _common

from auscult.synthetic import write_demo_set
from config import get_settings


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--folder",
        type=Path,
        default=get_settings().work_dir / "demo",
        help="where to write the WAV files (default: %(default)s)",
    )
    return p.parse_args()


def main() -> int:
    args = parse_args()
    _common.setup_logging()
    before = {p: p.stat().st_mtime_ns for p in args.folder.glob("*.wav")}
    paths = write_demo_set(args.folder)
    for path in paths:
        state = "unchanged" if before.get(path) == path.stat().st_mtime_ns else "written"
        print(f"{state:9s} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
