"""How a benchmark hands over its figures: one JSON object (``--json``) or aligned lines,
and optionally the same JSON in a file (``--out``) for the README and the Model page."""

from __future__ import annotations

import json
from pathlib import Path


def publish(figures: dict, out: Path | None, as_json: bool) -> None:
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(figures, indent=2) + "\n")
    if as_json:
        print(json.dumps(figures))
    else:
        for k, v in figures.items():
            print(f"{k:28} {v}")
