"""ECG benchmark: a 30-minute two-lead record and a 30 s strip, end to end, model size.

    python benchmarks/bench_ecg.py [--json] [--out FILE] [--repeats 20]

- ``record_30min_s``: MIT-BIH record 100 (30 min, two leads, 360 Hz) read from its WFDB
  files and analysed (beats, classes, rhythm, quality), warm (libraries and model loaded),
  median of three; ``record_30min_read_s`` is the reading part of it.
- ``strip_30s_ms``: a 30 s lead-I strip (Apple-Health-like CSV at 512.5 Hz) read and
  analysed, warm, median of ``--repeats``.
- ``model_bytes``: the committed beat model (LiteRT).
Needs the MIT-BIH folder (``settings.ecg_data_dir``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import soxr  # noqa: E402
from _report import publish  # noqa: E402

from auscult.ecg.analyzer import EcgAnalyzer  # noqa: E402
from auscult.ecg.reading import load_ecg  # noqa: E402
from config import get_settings  # noqa: E402


def _timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", type=Path)
    p.add_argument("--repeats", type=int, default=20)
    a = p.parse_args()
    s = get_settings()
    header = s.ecg_data_dir / "100.hea"
    analyzer = EcgAnalyzer(settings=s)
    analyzer.analyze(load_ecg(header, settings=s))  # warm: imports, model, filters
    reads, totals = [], []
    for _ in range(3):
        t_read, rec = _timed(lambda: load_ecg(header, settings=s))
        t_analyse, _ = _timed(lambda rec=rec: analyzer.analyze(rec))
        reads.append(t_read)
        totals.append(t_read + t_analyse)
    lead = load_ecg(header, settings=s).signal[: 360 * 30, 0].astype(np.float64)
    csv = "Sample Rate,512.5 hertz\nLead,Lead I\nUnit,µV\n\n" + "\n".join(
        f"{v:.2f}" for v in soxr.resample(lead, 360, 512.5) * 1000
    )
    files = [("ecg_2026-11-30.csv", csv.encode())]
    strips = [
        _timed(lambda: analyzer.analyze(load_ecg(files, settings=s)))[0] for _ in range(a.repeats)
    ]
    figures = {
        "record_30min_s": round(statistics.median(totals), 3),
        "record_30min_read_s": round(statistics.median(reads), 3),
        "strip_30s_ms": round(1000 * statistics.median(strips), 1),
        "model_bytes": s.ecg_model_path.stat().st_size,
        "model_version": analyzer.model.version,
    }
    publish(figures, a.out, a.json)


if __name__ == "__main__":
    main()
