"""A plain-language reading of one analysis: what it shows and what to do next.

UI-free: the desktop app, a report or the API can all show the same words.

Examples
--------
>>> r = reading(result)                                  # doctest: +SKIP
>>> r.headline, r.summary, r.next_step                   # doctest: +SKIP
('Abnormal', 'Abnormal pattern in 7 of 9 windows …', 'Consider referral …')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from auscult.analyzer import AnalysisResult

__all__ = [
    "DISCLAIMER",
    "HEADLINES",
    "Reading",
    "cycles_text",
    "percent_pair",
    "reading",
    "recording_tips",
]

#: Shown with every result.
DISCLAIMER = (
    "Decision support, not a diagnosis. The result must be read together with the patient's "
    "history and examination by a qualified clinician."
)

#: The big word on the result card, per label.
HEADLINES = {"normal": "Normal", "abnormal": "Abnormal", "unsure": "Unsure"}

_HOW_TO_RECORD = (
    "Quiet room; no talking, TV or fan; the patient sits still and breathes quietly.",
    "Press the microphone (or stethoscope) firmly on bare skin at the chosen site — no clothing.",
    "Hold still for 15–30 s; do not slide or rub during the recording.",
)


@dataclass(frozen=True)
class Reading:
    """What a clinician reads under the big result word."""

    label: str  # normal | abnormal | unsure
    headline: str  # the big word
    subtitle: str  # a few words under it
    summary: str  # one sentence: what the model found
    next_step: str  # one sentence: what to do now
    tips: tuple[str, ...] = ()  # how to record better, when that would help
    borderline: bool = False


def percent_pair(probability: float, threshold: float) -> tuple[str, str]:
    """Both as percentages, with a decimal when whole percents would look equal.

    ``(0.649, 0.653)`` → ``("64.9%", "65.3%")`` rather than a confusing "65% vs 65%".
    """
    p, t = f"{probability:.0%}", f"{threshold:.0%}"
    if p == t:
        p, t = f"{probability:.1%}", f"{threshold:.1%}"
    return p, t


def recording_tips(result: AnalysisResult) -> tuple[str, ...]:
    """Concrete advice for a better recording, from the result's warnings and quality."""
    tips: list[str] = []
    joined = " ".join(result.warnings).lower()
    if "clipped" in joined:
        tips.append("The sound was too loud (clipped): lower the gain or press a little less hard.")
    if "below 80 hz" in joined:
        tips.append(
            "This microphone missed the lowest heart sounds (phones do): if a murmur is "
            "suspected, listen again with a stethoscope."
        )
    if result.padded or result.duration_s < 10:
        tips.append(f"The recording is short ({result.duration_s:.0f} s): record 15–30 s.")
    if result.label == "unsure" and not result.borderline:
        tips.extend(_HOW_TO_RECORD)
    return tuple(tips)


_PHASE_WORDS = {
    "systolic": "high-pitched sound fills systole (between S1 and S2) more than in nine of "
    "ten normal hearts",
    "diastolic": "high-pitched sound fills diastole (between S2 and the next S1) more than in "
    "nine of ten normal hearts",
    "both": "high-pitched sound fills both systole and diastole more than in nine of ten "
    "normal hearts",
}


def cycles_text(result: AnalysisResult) -> str:
    """One sentence on the heart cycles found: how many, their timing, where sound sits."""
    if not result.s1_times_s:
        return "No regular S1–S2 rhythm could be followed, so the heart cycles are not marked."
    timing = ""
    if result.systole_ms and result.diastole_ms:
        timing = (
            f": S1→S2 (systole) {result.systole_ms:.0f} ms, S2→S1 (diastole) "
            f"{result.diastole_ms:.0f} ms"
        )
    phase = _PHASE_WORDS.get(
        result.murmur_phase, "no more sound between the heart sounds than in most normal hearts"
    )
    n = len(result.s1_times_s)
    return f"{n} heart cycle{'s' if n != 1 else ''} followed{timing}; {phase}."


def _problem(result: AnalysisResult) -> str:
    """What spoiled the recording, as the start of a sentence."""
    problem = result.quality_problem or "no clear, regular heartbeat stands out from the noise"
    return problem[0].upper() + problem[1:]


def reading(result: AnalysisResult) -> Reading:
    """The plain-language reading of ``result``."""
    n = len(result.window_probabilities)
    k = result.abnormal_windows
    p, t = result.probability, result.threshold
    windows = f"{k} of {n} window{'s' if n != 1 else ''}"
    if result.label == "unsure" and not result.borderline:
        return Reading(
            label="unsure",
            headline=HEADLINES["unsure"],
            subtitle="too poor to judge",
            summary=(
                f"{_problem(result)} (recording quality {result.quality:.0%}), so the model's "
                "answer would be a guess."
            ),
            next_step="Record again — here is how:",
            tips=recording_tips(result),
        )
    p_text, t_text = percent_pair(p, t)
    numbers = f"(probability {p_text}, threshold {t_text})"
    if result.borderline:
        lean = "abnormal" if p >= t else "normal"
        low, high = (f"{v:.0%}" for v in result.band)
        return Reading(
            label="unsure",
            headline=HEADLINES["unsure"],
            subtitle="borderline — too close to call",
            summary=(
                f"The probability {p_text} lies in the borderline band {low}–{high} around the "
                f"threshold {t_text}: a small change of device or recording would flip the call. "
                f"It leans {lean}, which is not a reliable answer."
            ),
            next_step=(
                "Record again at another site (aortic, pulmonic, tricuspid, mitral). If it "
                "stays borderline, have a clinician listen; with symptoms or clinical "
                "concern, examine and refer regardless."
            ),
            tips=recording_tips(result),
            borderline=True,
        )
    if result.label == "abnormal":
        summary = f"Abnormal pattern in {windows} {numbers}."
        next_step = (
            "Consider referral for echocardiography or a specialist review, "
            "together with the clinical picture."
        )
        subtitle = "abnormal heart sound — needs review"
    else:
        above = "none" if k == 0 else f"only {k}"
        summary = f"No abnormal pattern: {above} of {n} windows above the threshold {numbers}."
        next_step = (
            "Nothing in this recording calls for action; follow up as usual. If there are "
            "symptoms or clinical concern, examine and refer regardless."
        )
        subtitle = "no abnormal pattern found"
    return Reading(
        label=result.label,
        headline=HEADLINES.get(result.label, result.label.title()),
        subtitle=subtitle,
        summary=summary,
        next_step=next_step,
        tips=recording_tips(result),
    )
