"""Inference benchmark: warm and cold analysis time, model size, peak memory.

    python benchmarks/bench_inference.py [--json] [--repeats 50]

Warm: milliseconds to analyse a whole 30 s recording end to end (decode + front end +
quality + LiteRT inference over every window) with the model already loaded, median of
``--repeats`` runs, for a 2 kHz FLAC (stethoscope-like) and a 48 kHz WAV (phone-like).
Cold: a new Python process from start to the first result (median of ``--cold-runs``).
Peak memory: that process's maximum resident set size. Explanation: the extra milliseconds
of the occlusion explanation (``auscult.explain``) of a 30 s recording with a systolic
murmur, median over ``--repeats``. Synthetic heart sounds are used, so no data folder is
needed.
"""

from __future__ import annotations

import argparse
import io
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import soundfile as sf  # noqa: E402
from _report import publish  # noqa: E402

from auscult.synthetic import heart_sound  # noqa: E402
from config import get_settings  # noqa: E402

COLD = """
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
from auscult.analyzer import Analyzer
Analyzer().analyze({path!r})
print(time.perf_counter() - t0)
"""


def encoded(rate: int, fmt: str, seconds: float = 30.0) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, heart_sound(seconds, rate, bpm=75, seed=3), rate, format=fmt, subtype="PCM_16")
    return buf.getvalue()


def warm_ms(data: bytes, repeats: int) -> float:
    from auscult.analyzer import Analyzer

    analyzer = Analyzer()
    analyzer.analyze(data)  # first call allocates tensors
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        analyzer.analyze(data)
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def explain_ms(repeats: int) -> float:
    from auscult.analyzer import Analyzer
    from auscult.explain import explain

    analyzer = Analyzer()
    buf = io.BytesIO()
    sf.write(buf, heart_sound(30.0, 8000, bpm=75, murmur=True, seed=3), 8000, format="WAV")
    analysis = analyzer.analyze_detailed(buf.getvalue())
    explain(analyzer.runner, analysis.model_input, analysis.result)  # first call loads librosa
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        explain(analyzer.runner, analysis.model_input, analysis.result)
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def cold_start(path: Path) -> tuple[float, float, float]:
    """(seconds to first result inside the process, wall seconds, child peak RSS in MB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", COLD.format(root=str(ROOT), path=str(path))],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return float(out.stdout.strip().splitlines()[-1]), wall, max(peak, before) / 1024


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--cold-runs", type=int, default=3, help="cold starts; the median is kept")
    p.add_argument("--out", type=Path, help="also write the JSON object to this file")
    args = p.parse_args()
    s = get_settings()
    flac_2k = encoded(2000, "FLAC")
    wav_48k = encoded(48000, "WAV")
    tmp = s.work_dir / "bench"
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "bench_30s.flac").write_bytes(flac_2k)
    runs = sorted(cold_start(tmp / "bench_30s.flac") for _ in range(max(1, args.cold_runs)))
    cold_in, cold_wall, peak_mb = runs[len(runs) // 2]
    figures = {
        "warm_ms_30s_flac_2khz": round(warm_ms(flac_2k, args.repeats), 2),
        "warm_ms_30s_wav_48khz": round(warm_ms(wav_48k, args.repeats), 2),
        "explain_ms_30s": round(explain_ms(max(5, args.repeats // 5)), 2),
        "cold_start_s": round(cold_wall, 2),
        "cold_start_in_process_s": round(cold_in, 2),
        "peak_rss_mb_cold_process": round(peak_mb, 1),
        "model_bytes": s.tflite_path.stat().st_size,
        "repeats": args.repeats,
    }
    publish(figures, args.out, args.json)


if __name__ == "__main__":
    main()
