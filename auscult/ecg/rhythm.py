"""What the beats add up to: heart rate and its trend, ectopic burdens and patterns, pauses,
atrial fibrillation episodes and pacing.

Atrial fibrillation is read from RR irregularity in 30 s segments (irregularly irregular
intervals; Tateno & Glass, Med Biol Eng Comput 2001; Dash et al., Ann Biomed Eng 2009):
the median successive RR difference over the median RR, on intervals that touch no ectopic
beat (a PVC or PAC makes a regular rhythm look irregular; in AF, the early beats called S
drop out and the remaining intervals are still irregular). A record is paced when the
beat model calls enough of its beats paced (their shape, spike included, is what it learnt
from MIT-BIH's four paced records).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "AF_IRREGULARITY",
    "Rhythm",
    "af_segments",
    "read_rhythm",
]

SEGMENT_S = 30.0
#: Median |ΔRR| / median RR above which a 30 s segment is atrial fibrillation (chosen on
#: MIT-BIH DS1 segments by ``scripts/ecg_evaluate.py --choose-af``; the README has the DS2 result).
AF_IRREGULARITY = 0.07  # DS1: AF segments Se 0.985, other segments Sp 0.951
#: Share of paced beats above which the record is paced (out of fold on the training
#: records: paced 0.60–0.97, the others ≤ 0.03; see the ECG model card).
PACED_SHARE = 0.1
BRADY_BPM, TACHY_BPM = 50.0, 100.0
PAUSE_S = 2.0


@dataclass(frozen=True)
class Episode:
    start_s: float
    end_s: float

    def as_dict(self) -> dict[str, float]:
        return {"start_s": round(self.start_s, 2), "end_s": round(self.end_s, 2)}


@dataclass(frozen=True)
class Rhythm:
    """The rhythm summary of one record (every figure from judged stretches only)."""

    heart_rate_bpm: float | None
    hr_trend: list[tuple[float, float]]  # (minute start s, mean bpm) per minute
    rhythm: str  # "sinus", "atrial_fibrillation", "other" or "unsure"
    af_burden: float
    af_episodes: list[Episode]
    pvc_burden: float
    pac_burden: float
    patterns: list[str]  # "ventricular bigeminy", "bradycardia", …
    pauses_s: list[float]  # times of RR intervals longer than PAUSE_S
    paced: bool
    pacing_share: float
    findings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "heart_rate_bpm": None
            if self.heart_rate_bpm is None
            else round(self.heart_rate_bpm, 1),
            "hr_trend": [[round(t, 1), round(v, 1)] for t, v in self.hr_trend],
            "rhythm": self.rhythm,
            "af_burden": round(self.af_burden, 4),
            "af_episodes": [e.as_dict() for e in self.af_episodes],
            "pvc_burden": round(self.pvc_burden, 4),
            "pac_burden": round(self.pac_burden, 4),
            "patterns": list(self.patterns),
            "pauses_s": [round(t, 2) for t in self.pauses_s],
            "paced": self.paced,
            "pacing_share": round(self.pacing_share, 3),
            "findings": list(self.findings),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Rhythm:
        return cls(
            heart_rate_bpm=data["heart_rate_bpm"],
            hr_trend=[(float(t), float(v)) for t, v in data["hr_trend"]],
            rhythm=data["rhythm"],
            af_burden=float(data["af_burden"]),
            af_episodes=[Episode(e["start_s"], e["end_s"]) for e in data["af_episodes"]],
            pvc_burden=float(data["pvc_burden"]),
            pac_burden=float(data["pac_burden"]),
            patterns=list(data["patterns"]),
            pauses_s=list(data["pauses_s"]),
            paced=bool(data["paced"]),
            pacing_share=float(data["pacing_share"]),
            findings=list(data["findings"]),
        )


def af_segments(
    peaks: np.ndarray, classes: np.ndarray, rate: int, duration_s: float
) -> list[float | None]:
    """Irregularity of every 30 s segment (``None`` where too few clean intervals)."""
    t = np.asarray(peaks) / rate
    rr = np.diff(t)
    ectopic = np.isin(classes, ("V", "F", "Q", "S"))
    clean = ~(ectopic[1:] | ectopic[:-1])  # interval touches no ectopic or unjudged beat
    out: list[float | None] = []
    for k in range(max(1, int(np.ceil(duration_s / SEGMENT_S)))):
        inside = (t[1:] >= k * SEGMENT_S) & (t[1:] < (k + 1) * SEGMENT_S) & clean
        d = rr[inside]
        if len(d) < 5:
            out.append(None)
            continue
        out.append(float(np.median(np.abs(np.diff(d))) / max(np.median(d), 1e-3)))
    return out


def _patterns(classes: np.ndarray) -> list[str]:
    """Bigeminy/trigeminy: ≥ 3 repeats of (ectopic, normal) or (ectopic, normal, normal)."""
    found = []
    text = "".join("X" if c in ("V", "S") else ("n" if c == "N" else "?") for c in classes)
    kinds = {"V": "ventricular", "S": "supraventricular"}
    for every, name in ((2, "bigeminy"), (3, "trigeminy")):
        unit = "X" + "n" * (every - 1)
        at = text.find(unit * 4)
        if at >= 0:
            kind = kinds.get(str(classes[at]), "")
            found.append(f"{kind} {name}".strip())
    return found


def read_rhythm(
    peaks: np.ndarray,
    classes: np.ndarray,
    rate: int,
    duration_s: float,
    judged: np.ndarray,
    paced_beats: np.ndarray,
) -> Rhythm:
    """The rhythm summary; ``judged`` marks beats in stretches good enough to read and
    ``paced_beats`` those the beat model calls paced."""
    t = np.asarray(peaks) / rate
    ok = np.asarray(judged, dtype=bool)
    if ok.sum() < 4:
        return Rhythm(
            None,
            [],
            "unsure",
            0.0,
            [],
            0.0,
            0.0,
            [],
            [],
            False,
            0.0,
            ["too few readable beats to read a rhythm"],
        )
    rr = np.diff(t)
    rr_ok = ok[1:] & ok[:-1]
    hr = 60.0 / float(np.median(rr[rr_ok])) if rr_ok.any() else None
    trend = []
    for m in range(int(np.ceil(duration_s / 60.0))):
        sel = rr_ok & (t[1:] >= m * 60) & (t[1:] < (m + 1) * 60)
        if sel.sum() >= 3:
            trend.append((m * 60.0, 60.0 / float(np.mean(rr[sel]))))
    judged_classes = classes[ok]
    n = max(1, len(judged_classes))
    pvc = float(np.sum(judged_classes == "V")) / n
    pac = float(np.sum(judged_classes == "S")) / n
    irregularity = af_segments(peaks[ok], classes[ok], rate, duration_s)
    af = [v is not None and v >= AF_IRREGULARITY for v in irregularity]
    read = [v is not None for v in irregularity]
    af_burden = sum(af) / max(1, sum(read))
    episodes: list[Episode] = []
    for k, flag in enumerate(af):
        if not flag:
            continue
        start, end = k * SEGMENT_S, min(duration_s, (k + 1) * SEGMENT_S)
        if episodes and abs(episodes[-1].end_s - start) < 1e-6:
            episodes[-1] = Episode(episodes[-1].start_s, end)
        else:
            episodes.append(Episode(start, end))
    pauses = [float(t[i + 1]) for i in np.flatnonzero(rr_ok & (rr > PAUSE_S))]
    share = float(np.mean(np.asarray(paced_beats, dtype=bool)[ok]))
    paced = share >= PACED_SHARE
    patterns = _patterns(classes[ok])
    if hr is not None and hr < BRADY_BPM:
        patterns.append("bradycardia")
    if hr is not None and hr > TACHY_BPM:
        patterns.append("tachycardia")
    if af_burden >= 0.5:
        rhythm = "atrial_fibrillation"
    elif paced or pvc > 0.2 or any("bigeminy" in p for p in patterns):
        rhythm = "other"
    elif not any(read):  # too few clean intervals to tell sinus rhythm from AF
        rhythm = "unsure"
    else:
        rhythm = "sinus"
    findings = []
    if af_burden > 0:
        findings.append(
            f"atrial fibrillation in {af_burden:.0%} of the record ({len(episodes)} episode(s))"
        )
    if paced:
        findings.append(f"paced rhythm: {share:.0%} of beats look paced")
    if pvc >= 0.01:
        findings.append(f"ventricular ectopic beats: {pvc:.1%} of beats")
    if pac >= 0.01:
        findings.append(f"supraventricular ectopic beats: {pac:.1%} of beats")
    findings += [p for p in patterns]
    if pauses:
        findings.append(f"{len(pauses)} pause(s) longer than {PAUSE_S:.0f} s")
    return Rhythm(
        hr, trend, rhythm, af_burden, episodes, pvc, pac, patterns, pauses, paced, share, findings
    )
