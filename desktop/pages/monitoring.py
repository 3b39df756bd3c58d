"""Monitoring page: uptime, analyses per hour, labels and quality over time, latency, errors.

Figures over the chosen window come from the history store (``auscult.monitoring``); the
REST API's live counters come from its ``/metrics`` when it is running.
"""

from __future__ import annotations

import time
import urllib.request

import streamlit as st

from auscult.monitoring import parse_prometheus, summarise
from auscult.worker import read_heartbeat
from config import Settings, get_settings
from desktop.resources import service
from desktop.views import local_time

__all__ = ["page_monitoring"]


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min {rest % 60} s"


@st.cache_data(ttl=5, show_spinner=False)
def _api_metrics(url: str, key: str) -> dict[str, float] | None:
    """The API's Prometheus counters, or None when it does not answer."""
    request = urllib.request.Request(url, headers={"X-API-Key": key} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=1) as r:
            return parse_prometheus(r.read().decode())
    except (OSError, ValueError):
        return None


def _services_row(settings: Settings) -> None:
    beat = read_heartbeat(settings)
    api = _api_metrics(f"http://{settings.api_host}:{settings.api_port}/metrics", settings.api_key)
    c = st.columns(4)
    if beat is not None and beat.alive():
        c[0].metric("Analysis worker", "running", help=f"process {beat.pid}")
        c[1].metric("Worker uptime", _duration(time.time() - beat.started_at))
    else:
        c[0].metric("Analysis worker", "not running")
        c[1].metric("Worker uptime", "—")
    if api is None:
        c[2].metric("REST API", "not running", help=f"{settings.api_host}:{settings.api_port}")
        c[3].metric("API requests", "—")
    else:
        c[2].metric("REST API", "running", help=f"{settings.api_host}:{settings.api_port}")
        c[3].metric(
            "API requests",
            f"{api.get('auscult_http_requests_total', 0):.0f}",
            help="since the API started; "
            f"{api.get('auscult_http_errors_total', 0):.0f} answered with an error",
        )


def page_monitoring() -> None:
    settings = get_settings()
    st.title("Monitoring")
    _services_row(settings)
    hours = st.segmented_control(
        "Window", (1, 24, 24 * 7, 24 * 30), default=24, key="mon_hours",
        format_func=lambda h: {1: "last hour", 24: "24 hours", 168: "7 days", 720: "30 days"}[h],
    )  # fmt: skip
    summary = summarise(service(settings).store.entries(limit=20000), hours=hours or 24)
    c = st.columns(5)
    c[0].metric("Analyses", summary.analyses)
    c[1].metric("Per hour", f"{summary.per_hour:.1f}")
    c[2].metric(
        "Latency p50 / p95",
        f"{summary.latency_p50_ms:.0f} / {summary.latency_p95_ms:.0f} ms"
        if summary.latency_p50_ms is not None
        else "—",
        help="time the analysis itself took, from the recording to the stored result",
    )
    c[3].metric("Failed", summary.failed)
    c[4].metric("Waiting now", summary.waiting)
    if not summary.hours:
        st.info("No analyses in this window yet.")
        return
    left, right = st.columns(2, gap="large")
    with left:
        st.markdown("**Results per hour**")
        st.bar_chart(
            {
                "hour": [h.hour.astimezone() for h in summary.hours],
                "normal": [h.normal for h in summary.hours],
                "abnormal": [h.abnormal for h in summary.hours],
                "unsure": [h.unsure for h in summary.hours],
                "failed": [h.failed for h in summary.hours],
            },
            x="hour",
            y=["normal", "abnormal", "unsure", "failed"],
            color=["#2f9e44", "#e03131", "#f08c00", "#868e96"],
            height=260,
        )
    with right:
        st.markdown("**Recording quality** (finished analyses)")
        st.bar_chart(
            {
                "quality": [f"{i / 10:.1f}–{(i + 1) / 10:.1f}" for i in range(10)],
                "recordings": summary.quality_bins,
            },
            x="quality",
            y="recordings",
            color="#1c7ed6",
            height=260,
        )
    cols = st.columns(2)
    cols[0].markdown(
        "**Model versions:** " + (", ".join(f"{v} ({n})" for v, n in summary.models.items()) or "—")
    )
    cols[1].markdown(
        "**Sources:** " + ", ".join(f"{s} {n}" for s, n in sorted(summary.sources.items()))
    )
    if summary.errors:
        st.markdown("**Latest failures**")
        st.dataframe(
            [{"time": local_time(t), "message": m} for t, m in summary.errors],
            hide_index=True,
            column_config={"message": st.column_config.TextColumn("message", width="large")},
        )
