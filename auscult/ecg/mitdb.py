"""The MIT-BIH Arrhythmia Database as training and evaluation data (never read at runtime).

de Chazal et al. (IEEE TBME 2004) split the records by patient: DS1 trains, DS2 tests.
Records 102, 104, 107 and 217 are paced and left out of beat classification.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from auscult.ecg.classify import AAMI

__all__ = ["DS1", "DS2", "PACED", "Reference", "read_reference", "records"]

DS1 = (
    "101 106 108 109 112 114 115 116 118 119 122 124 201 203 205 207 208 209 215 220 223 230"
).split()
DS2 = (
    "100 103 105 111 113 117 121 123 200 202 210 212 213 214 219 221 222 228 231 232 233 234"
).split()
PACED = ("102", "104", "107", "217")
#: Every beat symbol the detector should find (EC57); "!" (flutter waves) are not beats.
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")


@dataclass(frozen=True)
class Reference:
    """A record's cardiologist annotations: beats, their AAMI class, rhythm episodes."""

    name: str
    samples: np.ndarray  # R-peak sample of every beat
    classes: np.ndarray  # AAMI class letter per beat ("N", "S", "V", "F", "Q")
    symbols: np.ndarray  # MIT-BIH beat symbol per beat
    rhythm: list[tuple[int, int, str]]  # (start, end, rhythm label such as "(AFIB")
    flutter: list[tuple[int, int]]  # ventricular flutter spans, excluded from detection (EC57)
    length: int


def records(folder: Path) -> list[str]:
    """Record names listed in the database's RECORDS file."""
    return [line.strip() for line in (folder / "RECORDS").read_text().split() if line.strip()]


def read_reference(folder: Path, name: str) -> Reference:
    import wfdb

    header = wfdb.rdheader(str(folder / name))
    ann = wfdb.rdann(str(folder / name), "atr")
    samples, classes, symbols = [], [], []
    rhythm, flutter = [], []
    current, since, opened = None, 0, None
    for sample, symbol, note in zip(ann.sample, ann.symbol, ann.aux_note, strict=True):
        if symbol in BEAT_SYMBOLS:
            samples.append(int(sample))
            classes.append(AAMI[symbol])
            symbols.append(symbol)
        elif symbol == "+" and note:
            label = note.strip("\x00").strip()
            if current is not None:
                rhythm.append((since, int(sample), current))
            current, since = label, int(sample)
        elif symbol == "[":
            opened = int(sample)
        elif symbol == "]" and opened is not None:
            flutter.append((opened, int(sample)))
            opened = None
    if current is not None:
        rhythm.append((since, int(header.sig_len), current))
    return Reference(
        name=name,
        samples=np.array(samples, dtype=np.int64),
        classes=np.array(classes),
        symbols=np.array(symbols),
        rhythm=rhythm,
        flutter=flutter,
        length=int(header.sig_len),
    )
