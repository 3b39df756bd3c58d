"""Exams: the recordings of one patient/exam id on one day, read together.

A clinician listens at four sites (aortic, pulmonic, tricuspid, mitral) and judges the heart,
not one recording. An exam groups every recording filed under the same pseudonymous
patient/exam id on the same local day; the newest recording per site stands for that site.
Earlier days of the same id are earlier exams, to compare with.

UI-free: the desktop, the API and the PDF report read the same summary.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from auscult.store import SITES, Entry

__all__ = ["Exam", "group_exams", "local_day"]

#: Order of the verdicts from most to least pressing; an exam takes its most pressing site's.
_PRESSING = ("abnormal", "unsure", "waiting", "failed", "normal")


def local_day(stamp: str) -> str:
    """The local calendar day (YYYY-MM-DD) of a stored UTC time stamp."""
    return datetime.fromisoformat(stamp).astimezone().date().isoformat()


def _verdict(entry: Entry) -> str:
    if entry.status == "done" and entry.label:
        return entry.label
    return "failed" if entry.status == "error" else "waiting"


def _site_words(entry: Entry) -> str:
    verdict = _verdict(entry)
    result = entry.result or {}
    if verdict == "abnormal" and entry.probability is not None:
        return f"abnormal ({entry.probability:.0%})"
    if verdict == "unsure":
        return "unsure (borderline)" if result.get("borderline") else "unsure (too poor)"
    return verdict


@dataclass(frozen=True)
class Exam:
    """One patient/exam id on one day: its recordings, newest first."""

    patient_id: str
    day: str  # YYYY-MM-DD, local time
    entries: tuple[Entry, ...]

    @property
    def key(self) -> str:
        """``<patient id>@<day>``: names the exam in links, files and the API."""
        return f"{self.patient_id}@{self.day}"

    @property
    def by_site(self) -> dict[str, Entry]:
        """The newest recording of each site, in the order of SITES (others under "other")."""
        newest: dict[str, Entry] = {}
        for entry in self.entries:  # newest first: keep the first seen
            newest.setdefault(entry.site if entry.site in SITES else "other", entry)
        order = [*SITES, "other"]
        return {site: newest[site] for site in order if site in newest}

    @property
    def verdict(self) -> str:
        """The most pressing verdict of its sites: abnormal > unsure > waiting > normal."""
        verdicts = {_verdict(e) for e in self.by_site.values()}
        return next((v for v in _PRESSING if v in verdicts), "waiting")

    @property
    def missing_sites(self) -> tuple[str, ...]:
        return tuple(s for s in SITES if s not in self.by_site)

    def summary(self) -> str:
        """One line: each site's verdict, what is missing, and what the exam calls for."""
        parts = [f"{site} {_site_words(e)}" for site, e in self.by_site.items()]
        line = "; ".join(parts)
        if self.missing_sites:
            line += f" — not yet recorded: {', '.join(self.missing_sites)}"
        action = {
            "abnormal": "needs review",
            "unsure": "record the unsure sites again",
            "waiting": "analysis under way",
            "failed": "a recording failed; record it again",
            "normal": "no abnormal pattern at any recorded site",
        }[self.verdict]
        return f"{line}. Exam: {action}."


def group_exams(entries: Iterable[Entry]) -> list[Exam]:
    """Exams of the entries that carry a patient/exam id, newest day first."""
    groups: dict[tuple[str, str], list[Entry]] = {}
    for entry in entries:
        if entry.patient_id:
            groups.setdefault((entry.patient_id, local_day(entry.created_at)), []).append(entry)
    exams = [
        Exam(pid, day, tuple(sorted(members, key=lambda e: e.id, reverse=True)))
        for (pid, day), members in groups.items()
    ]
    return sorted(exams, key=lambda x: (x.day, max(e.id for e in x.entries)), reverse=True)
