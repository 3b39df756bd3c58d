"""How the service has been doing: analyses per hour, labels, quality, latency, errors.

Computed from the history store (every door writes there), so the desktop's Monitoring page
and the REST API report the same figures. Prometheus counters of the running API
(``GET /metrics``) are parsed by :func:`parse_prometheus` for the page's live figures.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from auscult.store import Entry

__all__ = ["HourRow", "Summary", "parse_prometheus", "summarise"]


@dataclass(frozen=True)
class HourRow:
    """One hour of analyses (UTC), for the charts over time."""

    hour: datetime
    normal: int = 0
    abnormal: int = 0
    unsure: int = 0
    failed: int = 0
    mean_quality: float | None = None


@dataclass(frozen=True)
class Summary:
    """Figures over a window of history."""

    since: datetime
    analyses: int
    per_hour: float  # finished analyses (done or failed) per hour over the window
    labels: dict[str, int]
    failed: int
    waiting: int  # pending or being analysed now
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    quality_bins: list[int]  # recordings per quality tenth 0–0.1 … 0.9–1.0
    models: dict[str, int]  # analyses per model version
    sources: dict[str, int]
    hours: list[HourRow] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # newest (time, message)


def _parse(stamp: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(stamp) if stamp else None
    except ValueError:
        return None


def summarise(entries: list[Entry], hours: int = 24, now: datetime | None = None) -> Summary:
    """Summarise the rows created in the last ``hours`` hours."""
    now = now or datetime.now(UTC)
    since = now - timedelta(hours=hours)
    rows = [e for e in entries if (t := _parse(e.created_at)) is not None and t >= since]
    done = [e for e in rows if e.status == "done"]
    failed = [e for e in rows if e.status == "error"]
    latencies = np.array([e.elapsed_ms for e in done + failed if e.elapsed_ms is not None])
    qualities = np.array([e.quality for e in done if e.quality is not None], dtype=float)
    by_hour: dict[datetime, list[Entry]] = {}
    for e in rows:
        t = _parse(e.created_at)
        assert t is not None
        by_hour.setdefault(t.replace(minute=0, second=0, microsecond=0), []).append(e)
    hour_rows = []
    for hour in sorted(by_hour):
        group = by_hour[hour]
        labels = Counter(e.label for e in group if e.status == "done")
        qs = [e.quality for e in group if e.status == "done" and e.quality is not None]
        hour_rows.append(
            HourRow(
                hour,
                labels["normal"],
                labels["abnormal"],
                labels["unsure"],
                sum(e.status == "error" for e in group),
                float(np.mean(qs)) if qs else None,
            )
        )
    return Summary(
        since=since,
        analyses=len(done),
        per_hour=(len(done) + len(failed)) / hours,
        labels={k: sum(e.label == k for e in done) for k in ("normal", "abnormal", "unsure")},
        failed=len(failed),
        waiting=sum(e.status in ("pending", "analysing") for e in rows),
        latency_p50_ms=float(np.percentile(latencies, 50)) if len(latencies) else None,
        latency_p95_ms=float(np.percentile(latencies, 95)) if len(latencies) else None,
        quality_bins=np.histogram(qualities, bins=10, range=(0.0, 1.0))[0].tolist(),
        models=dict(Counter((e.result or {}).get("model_version", "unknown") for e in done)),
        sources=dict(Counter(e.source for e in rows)),
        hours=hour_rows,
        errors=[(e.created_at, e.error or "") for e in failed[:10]],
    )


def parse_prometheus(text: str) -> dict[str, float]:
    """Sum the samples of each metric (labels dropped) in Prometheus text format."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_part, _, value = line.rpartition(" ")
        name = name_part.split("{", 1)[0]
        try:
            totals[name] = totals.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return totals
