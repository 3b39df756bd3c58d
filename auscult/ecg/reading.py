"""Every ECG file the product accepts, read through one validated entry: :func:`load_ecg`.

Formats: WFDB (``.hea`` + ``.dat``, or ``.hea`` + ``.mat`` as PhysioNet challenges ship them,
uploaded together or as one zip), EDF/EDF+, CSV (one value per line, ``time,value``, or a
header row naming a time column and leads) and the Apple Health ECG export (a header block
with ``Sample Rate,512.5 hertz``, ``Lead,Lead I``, ``Unit,µV``, then one sample per line).
Whatever comes in leaves as millivolts at ``settings.ecg_rate`` (360 Hz, MIT-BIH's own), so
the detector and the beat model always see the same rate and scale.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from auscult.errors import InvalidEcgError
from config import Settings, get_settings

__all__ = ["EcgRecording", "EcgSource", "load_ecg", "pick_lead"]

#: A file on disk (a WFDB record is given as its ``.hea``), or uploaded files as
#: ``(name, bytes)`` pairs (a WFDB record's ``.hea`` with its ``.dat``/``.mat``, or a zip).
EcgSource = Path | str | Sequence[tuple[str, bytes]]

_UNIT_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3, "nv": 1e-6}
#: Lead names preferred for analysis, best first (the beat model learnt limb-lead beats).
_PREFERRED_LEADS = ("MLII", "II", "I", "LEAD II", "LEAD I", "ECG", "ECG1", "V5", "MLI")


@dataclass(frozen=True)
class EcgRecording:
    """A decoded, validated ECG: ``(n_samples, n_leads)`` millivolts at ``settings.ecg_rate``."""

    signal: np.ndarray
    rate: int
    leads: tuple[str, ...]
    source_rate: float  # Hz, as recorded
    warnings: tuple[str, ...] = ()

    @property
    def duration_s(self) -> float:
        return self.signal.shape[0] / self.rate

    def lead(self, index: int) -> np.ndarray:
        return self.signal[:, index]


def pick_lead(leads: Sequence[str], wanted: str | int | None = None) -> int:
    """Index of the lead to analyse: ``wanted`` (name or index), else a limb lead, else
    the first."""
    if isinstance(wanted, int):
        if not 0 <= wanted < len(leads):
            raise InvalidEcgError(
                f"this file has {len(leads)} lead(s); lead {wanted + 1} does not exist"
            )
        return wanted
    names = [name.strip().upper() for name in leads]
    if wanted:
        if wanted.strip().upper() in names:
            return names.index(wanted.strip().upper())
        raise InvalidEcgError(f"this file has no lead called {wanted!r}; it has {', '.join(leads)}")
    for name in _PREFERRED_LEADS:
        if name in names:
            return names.index(name)
    return 0


def _to_mv(unit: str) -> float:
    key = unit.strip().lower().replace("micro", "u").replace("milli", "m").rstrip("s")
    key = {"uvolt": "uv", "mvolt": "mv", "volt": "v"}.get(key, key)
    return _UNIT_TO_MV.get(key, 1.0)


# ---------------------------------------------------------------- format readers


def _read_wfdb(header: Path) -> tuple[np.ndarray, float, list[str], list[str]]:
    import wfdb  # heavy; ECG only

    try:
        record = wfdb.rdrecord(str(header.with_suffix("")))
    except FileNotFoundError as exc:
        raise InvalidEcgError(
            f"the WFDB header {header.name} names a signal file that was not given "
            f"({Path(str(exc.filename or '')).name or 'its .dat/.mat file'}) — upload the .hea "
            "together with its .dat (or .mat) file, or both in one zip"
        ) from exc
    except Exception as exc:  # wfdb raises bare ValueErrors and worse on malformed input
        raise InvalidEcgError(f"{header.name} is not a readable WFDB record ({exc})") from exc
    if record.p_signal is None or record.p_signal.size == 0:
        raise InvalidEcgError(f"the WFDB record {header.stem} holds no samples")
    units = list(record.units or ["mV"] * record.p_signal.shape[1])
    return record.p_signal, float(record.fs), list(record.sig_name), units


def _read_edf(path: Path) -> tuple[np.ndarray, float, list[str], list[str]]:
    import pyedflib

    try:
        reader = pyedflib.EdfReader(str(path))
    except OSError as exc:
        raise InvalidEcgError(f"{path.name} is not a readable EDF/EDF+ file ({exc})") from exc
    try:
        rates = [reader.getSampleFrequency(i) for i in range(reader.signals_in_file)]
        labels = reader.getSignalLabels()
        # Keep the leads recorded at the main rate (EDF+ files also carry slow channels).
        main = max(set(rates), key=rates.count) if rates else 0
        keep = [
            i for i, r in enumerate(rates) if r == main and "annotation" not in labels[i].lower()
        ]
        if not keep:
            raise InvalidEcgError(f"{path.name} holds no signal channels")
        n = min(reader.getNSamples()[i] for i in keep)
        signal = np.stack([reader.readSignal(i)[:n] for i in keep], axis=1)
        units = [reader.getPhysicalDimension(i) or "uV" for i in keep]
        return signal, float(main), [labels[i] for i in keep], units
    finally:
        reader.close()


_RATE = re.compile(r"([\d.]+)\s*(hz|hertz)?", re.IGNORECASE)


def _number(text: str) -> float | None:
    try:
        return float(text.strip().strip('"').replace("\u2212", "-"))
    except ValueError:
        return None


def _read_csv(
    text: str, name: str, rate_hz: float | None
) -> tuple[np.ndarray, float, list[str], list[str]]:
    """One value per line, ``time,value[,…]``, a header row, or Apple Health's export.

    Lines before the first numeric line are metadata (``key,value``, as Apple writes them);
    the last of them names the columns when it has as many cells as the data rows.
    """
    before, data = _fast_rows(text)
    if data is None:
        before, data = _rows(text, name)
    return _columns(before, data, name, rate_hz)


def _cells(line: list[str]) -> list[str]:
    """A CSV line's cells, stripped, without the empty ones a trailing comma leaves."""
    cells = [c.strip() for c in line]
    while cells and cells[-1] == "":
        cells.pop()
    return cells


def _fast_rows(text: str) -> tuple[list[list[str]], np.ndarray | None]:
    """The common case at C speed: metadata lines, then a block of plain numbers (a 24 h
    single-lead export has millions of lines). ``None`` when the block is not that simple."""
    lines = text.splitlines()
    start = 0
    before: list[list[str]] = []
    while start < len(lines):
        cells = _cells(next(csv.reader([lines[start]]), []))
        if cells and all(_number(c) is not None for c in cells):
            break
        if cells:
            before.append(cells)
        start += 1
    block = "\n".join(lines[start:])
    if '"' in block or start >= len(lines):
        return before, None
    width = len(lines[start].rstrip(", ").split(","))
    try:
        values = np.array(block.replace(",", " ").split(), dtype=np.float64)
    except ValueError:
        return before, None
    if len(values) % width:
        return before, None
    return before, values.reshape(-1, width)


def _rows(text: str, name: str) -> tuple[list[list[str]], np.ndarray]:
    """Line by line, to say which line is wrong."""
    before: list[list[str]] = []
    rows: list[list[float]] = []
    # newline="": the csv module reads a bare carriage return (old Mac line ends) as a line
    # end only when it sees the line ends itself
    for number, line in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        cells = _cells(line)
        if not cells:
            continue
        values = [_number(c) for c in cells]
        if all(v is not None for v in values):
            rows.append([float(v) for v in values])  # type: ignore[arg-type]
        elif not rows:
            before.append(cells)
        else:
            raise InvalidEcgError(
                f"{name}: line {number} is not a number ({','.join(cells)[:40]!r}) — a CSV "
                "ECG holds one sample per line, or time,value"
            )
    if not rows:
        raise InvalidEcgError(f"{name} holds no ECG samples (no numeric lines)")
    if len({len(r) for r in rows}) != 1:
        raise InvalidEcgError(f"{name}: the lines do not all have the same number of columns")
    return before, np.asarray(rows, dtype=np.float64)


def _columns(
    before: list[list[str]], data: np.ndarray, name: str, rate_hz: float | None
) -> tuple[np.ndarray, float, list[str], list[str]]:
    """Rate, lead names and units from the metadata lines and the column layout."""
    header = before[-1] if before and len(before[-1]) == data.shape[1] else []
    meta = {c[0].lower(): ",".join(c[1:]) for c in before if len(c) >= 2 and c is not header}
    unit = meta.get("unit", "mV")
    if "sample rate" in meta:  # Apple Health: "512.5 hertz"
        m = _RATE.search(meta["sample rate"])
        rate_hz = float(m.group(1)) if m else rate_hz
    lead_name = re.sub(r"(?i)^lead\s+", "", meta.get("lead", "")).strip() or "ECG"
    names = header or (
        [lead_name] if data.shape[1] == 1 else [f"lead {i + 1}" for i in range(data.shape[1])]
    )
    timed = data.shape[1] >= 2 and (
        (header and header[0].lower() in {"time", "t", "time_s", "seconds", "time (s)"})
        or _looks_like_time(data[:, 0])
    )
    if timed:
        t = data[:, 0]
        step = float((t[-1] - t[0]) / (len(t) - 1)) if len(t) > 1 else 0.0
        if step <= 0 or np.any(np.diff(t) <= 0):
            raise InvalidEcgError(f"{name}: the time column does not increase")
        if step >= 0.5:  # milliseconds (a 2 Hz ECG is not one)
            step /= 1000.0
        rate_hz = rate_hz or 1.0 / step
        data, names = data[:, 1:], names[1:]
    if not rate_hz:
        raise InvalidEcgError(
            f"{name} does not say its sampling rate — give it (for example 250 Hz), or use "
            "a time,value CSV"
        )
    return data, float(rate_hz), list(names), [unit] * data.shape[1]


def _looks_like_time(column: np.ndarray) -> bool:
    """A first column that rises in small, even steps is a time axis, not a lead."""
    head = column[: min(len(column), 2000)]
    if len(head) < 3:
        return False
    steps = np.diff(head)
    return bool(np.all(steps > 0) and np.std(steps) <= 0.05 * abs(np.mean(steps)))


# ---------------------------------------------------------------- the entry point


def _files_of(source: EcgSource, folder: Path) -> list[Path]:
    """The files to read, on disk (uploads and zip members are written into ``folder``)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise InvalidEcgError(f"no such file: {path}")
        if path.suffix.lower() == ".zip":
            return _unzip(path.read_bytes(), path.name, folder)
        return [path]
    files: list[Path] = []
    for name, data in source:
        clean = Path(name).name or "upload"
        if clean.lower().endswith(".zip"):
            files += _unzip(data, clean, folder)
        else:
            target = folder / clean
            target.write_bytes(data)
            files.append(target)
    return files


def _unzip(data: bytes, name: str, folder: Path) -> list[Path]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise InvalidEcgError(f"{name} is not a readable zip file") from exc
    out = []
    for member in archive.infolist():
        base = Path(member.filename).name
        if member.is_dir() or not base or base.startswith("."):
            continue
        target = folder / base
        target.write_bytes(archive.read(member))
        out.append(target)
    if not out:
        raise InvalidEcgError(f"{name} is empty")
    return out


def _read_any(files: list[Path], rate_hz: float | None):
    """Raw samples, rate, lead names and units of the one record in ``files``."""
    by_ext: dict[str, list[Path]] = {}
    for f in files:
        by_ext.setdefault(f.suffix.lower(), []).append(f)
    if ".hea" in by_ext:
        if len(by_ext[".hea"]) > 1:
            names = ", ".join(sorted(f.name for f in by_ext[".hea"]))
            raise InvalidEcgError(f"several WFDB records were given ({names}); send one at a time")
        return _read_wfdb(by_ext[".hea"][0])
    if ".dat" in by_ext or ".mat" in by_ext:
        raise InvalidEcgError(
            "a WFDB signal file came without its .hea header — upload both together"
        )
    for ext in (".edf", ".bdf", ".rec"):
        if ext in by_ext:
            return _read_edf(by_ext[ext][0])
    if len(files) != 1:
        raise InvalidEcgError("send one ECG file (or a WFDB record's .hea with its signal file)")
    path = files[0]
    raw = path.read_bytes()
    if not raw.strip():
        raise InvalidEcgError(f"{path.name} is empty")
    if raw[:8].startswith(b"0       "):  # an EDF header under another name
        return _read_edf(path)
    if b"\x00" in raw[:4096]:
        raise InvalidEcgError(
            f"{path.name} is not an ECG file this product reads (WFDB .hea + .dat, EDF, CSV "
            "or an Apple Health ECG export)"
        )
    text = raw.decode("utf-8-sig", errors="replace")
    return _read_csv(text, path.name, rate_hz)


def load_ecg(
    source: EcgSource,
    *,
    rate_hz: float | None = None,
    settings: Settings | None = None,
) -> EcgRecording:
    """Read, validate and resample an ECG; raises :class:`InvalidEcgError` with the reason."""
    s = settings or get_settings()
    with tempfile.TemporaryDirectory(prefix="auscult-ecg-") as tmp:
        raw, rate, names, units = _read_any(_files_of(source, Path(tmp)), rate_hz)
    signal = np.asarray(raw, dtype=np.float64)
    if signal.ndim == 1:
        signal = signal[:, None]
    if not s.ecg_min_rate_hz <= rate <= s.ecg_max_rate_hz:
        raise InvalidEcgError(
            f"the ECG is sampled at {rate:g} Hz; this product reads {s.ecg_min_rate_hz}–"
            f"{s.ecg_max_rate_hz} Hz"
        )
    duration = signal.shape[0] / rate
    if duration < s.ecg_min_duration_s:
        raise InvalidEcgError(
            f"the ECG lasts {duration:.1f} s; at least {s.ecg_min_duration_s:.0f} s are needed "
            "to find beats and read a rhythm"
        )
    if duration > s.ecg_max_duration_s:
        raise InvalidEcgError(
            f"the ECG lasts {duration / 3600:.1f} h; the limit is "
            f"{s.ecg_max_duration_s / 3600:.0f} h — split it into shorter records"
        )
    warnings: list[str] = []
    signal = signal * np.array([_to_mv(u) for u in units])[None, :]
    missing = ~np.isfinite(signal)
    if missing.any():
        share = float(missing.mean())
        if share > 0.5:
            raise InvalidEcgError("more than half of the ECG samples are missing")
        warnings.append(f"{share:.1%} of samples were missing and were filled in")
        for j in range(signal.shape[1]):
            bad = missing[:, j]
            if bad.all():
                signal[:, j] = 0.0
            elif bad.any():
                idx = np.arange(len(bad))
                signal[bad, j] = np.interp(idx[bad], idx[~bad], signal[~bad, j])
    if float(np.max(np.ptp(signal, axis=0))) < 1e-6:
        raise InvalidEcgError(
            "the ECG is a flat line (no signal on any lead) — check that the electrodes touch "
            "the skin and record again"
        )
    if rate != s.ecg_rate:
        import soxr

        signal = soxr.resample(signal, rate, s.ecg_rate, quality="HQ")
    return EcgRecording(
        signal=np.ascontiguousarray(signal, dtype=np.float32),
        rate=s.ecg_rate,
        leads=tuple(names),
        source_rate=float(rate),
        warnings=tuple(warnings),
    )
