"""Phase 1 validation: are the model, its metadata, the front end and the data in order?

    python validation/phase1_validation.py

Prints a check list (✔ passed, ✘ failed, – skipped with the reason) and exits 1 when any
check fails. Needs no TensorFlow: the model runs with LiteRT, as in the apps.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from auscult.model_card import load_card  # noqa: E402
from auscult.runner import check_preprocessing as check_preprocessing_of  # noqa: E402
from auscult.runner import sha256_of  # noqa: E402
from config import get_settings  # noqa: E402


class Skip(Exception):
    """A check that does not apply here (the message says why)."""


def check_model_files() -> str:
    s = get_settings()
    card = load_card(s)
    for name, info in card.files.items():
        path = s.models_dir / name
        if not path.exists():
            raise AssertionError(f"{path} is missing")
        if sha256_of(path) != info.sha256:
            raise AssertionError(f"{name}: sha256 differs from metadata.json")
    size = s.tflite_path.stat().st_size
    return f"{', '.join(card.files)} match metadata.json ({size / 1024:.0f} KB LiteRT model)"


def check_metadata() -> str:
    card = load_card()  # refuses a card that lacks a required field
    test = card.metrics.test
    empty = [
        name
        for name, part in (
            ("test metrics", test),
            ("calibration", card.calibration),
            ("borderline band", card.borderline),
            ("training record", card.training.split),
            ("training parameters", card.params),
        )
        if not part
    ]
    if empty:
        raise AssertionError(f"metadata.json holds no {', '.join(empty)}")
    return (
        f"threshold {card.threshold:.3f}; test Se {test.get('sensitivity', float('nan')):.3f}, "
        f"Sp {test.get('specificity', float('nan')):.3f}, AUC {test.get('auc', float('nan')):.3f}"
    )


def check_calibration() -> str:
    card = load_card()
    calibration, band = card.calibration_map, card.band
    if calibration.slope <= 0:
        raise AssertionError(f"calibration slope {calibration.slope} would reverse the ranking")
    if not band.low <= card.threshold <= band.high:
        raise AssertionError(f"borderline band {band} does not surround the threshold")
    ece = card.calibration.get("ece", {})
    return (
        f"{calibration.method} scaling, test ECE {ece.get('test', float('nan')):.3f}; "
        f"borderline band {band.low:.2f}–{band.high:.2f} around {card.threshold:.2f}"
    )


def check_preprocessing() -> str:
    s = get_settings()
    card = load_card(s)
    check_preprocessing_of(card, s)  # the runner's own check, raises with the difference
    return f"{len(card.preprocessing)} front-end constants match config.py"


def check_data() -> str:
    from auscult.datasets import read_physionet

    s = get_settings()
    if not s.data_dir.exists():
        raise Skip(
            f"no PhysioNet folder at {s.data_dir} (set AUSCULT_DATA_DIR; not needed to run the app)"
        )
    records = read_physionet(s.data_dir)
    abnormal = sum(r.label for r in records)
    return f"{len(records)} labelled records ({abnormal} abnormal) in {s.data_dir}"


def check_cache() -> str:
    from auscult.cache import check_cache as check_cache_of

    s = get_settings()
    folder = s.cache_dir / "physionet2016"
    if not (folder / "preprocessing.json").exists():
        raise Skip(
            f"no feature cache at {folder} (built by scripts/fast_batch_process.py when training)"
        )
    check_cache_of(folder, s)  # raises when the cache was built with other constants
    rows = sum(1 for _ in open(folder / "manifest.csv")) - 1
    return f"feature cache current: {rows} records"


def _analyzer():
    from auscult.analyzer import Analyzer

    return Analyzer()


def check_synthetic_prediction() -> str:
    import io

    import soundfile as sf

    from auscult.synthetic import heart_sound

    analyzer = _analyzer()
    buf = io.BytesIO()
    sf.write(buf, heart_sound(20.0, 8000, bpm=72, seed=1), 8000, format="WAV")
    started = time.perf_counter()
    r = analyzer.analyze(buf.getvalue())
    ms = 1000 * (time.perf_counter() - started)
    if not 0.0 <= r.probability <= 1.0 or len(r.window_probabilities) == 0:
        raise AssertionError(f"implausible result {r.probability}")
    bpm = f"{r.heart_rate_bpm:.0f} bpm" if r.heart_rate_bpm else "no heart rate"
    return f"synthetic 72 bpm sound → {r.label} (p={r.probability:.2f}, {bpm}) in {ms:.0f} ms"


def check_real_prediction() -> str:
    from auscult.datasets import read_physionet

    s = get_settings()
    if not s.data_dir.exists():
        raise Skip("no PhysioNet data folder")
    record = read_physionet(s.data_dir)[0]
    r = _analyzer().analyze(record.path)
    reference = "abnormal" if record.label else "normal"
    return f"{record.name} → {r.label} (p={r.probability:.2f}); reference label {reference}"


def check_ecg_model() -> str:
    """The ECG beat model loads and reads a real MIT-BIH record (or a synthetic one)."""
    import numpy as np

    from auscult.ecg.analyzer import EcgAnalyzer
    from auscult.ecg.reading import EcgRecording, load_ecg

    s = get_settings()
    analyzer = EcgAnalyzer(settings=s)
    header = s.ecg_data_dir / "100.hea"
    if header.exists():
        recording = load_ecg(header, settings=s)
        recording = EcgRecording(recording.signal[: 360 * 60], 360, recording.leads, 360.0)
    else:  # a 60 bpm train of narrow spikes
        x = np.zeros((360 * 60, 1), dtype=np.float32)
        x[180::360, 0] = 1.0
        recording = EcgRecording(x, 360, ("I",), 360.0)
    result = analyzer.analyze(recording)
    size = s.ecg_model_path.stat().st_size
    return (
        f"{s.ecg_model_path.name} ({size / 1024:.0f} KB, {analyzer.model.version}): "
        f"{len(result.beat_times_s)} beats, rhythm {result.rhythm.rhythm}, "
        f"{result.rhythm.heart_rate_bpm or 0:.0f} bpm"
    )


def check_no_tensorflow() -> str:
    if "tensorflow" in sys.modules:
        raise AssertionError(
            "TensorFlow was imported by the runtime path; the apps must use LiteRT only"
        )
    return "analysis ran without importing TensorFlow"


CHECKS: list[tuple[str, Callable[[], str]]] = [
    ("model files", check_model_files),
    ("metadata", check_metadata),
    ("calibration", check_calibration),
    ("preprocessing", check_preprocessing),
    ("data folder", check_data),
    ("feature cache", check_cache),
    ("synthetic prediction", check_synthetic_prediction),
    ("real-record prediction", check_real_prediction),
    ("ECG beat model", check_ecg_model),
    ("LiteRT only", check_no_tensorflow),
]


def main() -> int:
    failed = 0
    print("Auscult phase 1 validation")
    for name, check in CHECKS:
        try:
            print(f"  ✔ {name}: {check()}")
        except Skip as skip:
            print(f"  – {name}: skipped, {skip}")
        except Exception as exc:
            failed += 1
            print(f"  ✘ {name}: {exc}")
    print(
        f"{len(CHECKS) - failed} of {len(CHECKS)} checks passed"
        if not failed
        else f"{failed} check(s) FAILED"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
