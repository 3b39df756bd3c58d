"""Build the training feature cache with a process pool (same files as preprocess.py).

python scripts/fast_batch_process.py [--workers N] [--data-dir DIR] [--out DIR]
"""

from __future__ import annotations

import os

import _common  # noqa: F401  (import path)
from preprocess import main

if __name__ == "__main__":
    main(default_workers=os.cpu_count() or 2)
