"""What the desktop analyzer loads once per process: the service (store + model), the worker.

Everything here is a ``st.cache_resource``: shared by every browser tab and page of one
Streamlit server, keyed by the settings that locate it, so a test that points the app at a
new work folder gets a new store.
"""

from __future__ import annotations

import logging
import threading
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from auscult.analyzer import Analyzer
from auscult.errors import AuscultError
from auscult.service import Service
from auscult.worker import Worker, read_heartbeat
from config import Settings, get_settings

__all__ = ["Demo", "demo_recordings", "find_demo_recordings", "load_analyzer", "service"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Demo:
    """A recording offered in the demo picker."""

    title: str
    path: Path
    reference: str | None  # "normal" / "abnormal" from PhysioNet REFERENCE.csv


_ANALYZERS: dict[tuple[str, str], Analyzer] = {}
_WORKER_STOPS: list[threading.Event] = []
_ANALYZERS_LOCK = threading.Lock()


def _analyzer(settings: Settings) -> Analyzer:
    """One analyzer per model location and process, shared by every service and thread.

    A plain dict, not ``st.cache_resource``: the worker thread loads it outside any page run.
    """
    with _ANALYZERS_LOCK:
        key = (str(settings.models_dir), settings.model_name)
        if key not in _ANALYZERS:
            _ANALYZERS[key] = Analyzer(settings=settings)
        return _ANALYZERS[key]


@st.cache_resource
def _service(db_path: str, models_dir: str, model_name: str) -> Service:
    del db_path, models_dir, model_name  # cache keys
    settings = get_settings()
    service = Service(settings, analyzer=lambda: _analyzer(settings))
    _ensure_worker(service)
    return service


def service(settings: Settings | None = None) -> Service:
    """The process-wide service for these settings (history store, lazily loaded model)."""
    s = settings or get_settings()
    return _service(str(s.db_path), str(s.models_dir), s.model_name)


def _ensure_worker(service: Service) -> None:
    """Recordings are analysed even when the app runs without the launcher.

    The launcher starts a worker process; when no worker's heartbeat is fresh (the app was
    started with ``streamlit run app.py``), one runs in a thread of this server process —
    started with the server, not by a page. Two workers never analyse the same row.
    """
    beat = read_heartbeat(service.settings)
    if beat is not None and beat.alive():
        return
    stop = threading.Event()
    _WORKER_STOPS.append(stop)
    Worker(service).start_thread(stop)
    log.info("no analysis worker was running: started one in the analyzer process")


def stop_workers() -> None:
    """Stop the worker threads this process started (tests; the process ending does too)."""
    while _WORKER_STOPS:
        _WORKER_STOPS.pop().set()


def load_analyzer(settings: Settings | None = None) -> tuple[Analyzer | None, str | None]:
    """The process-wide analyzer, or ``(None, message)`` when the model cannot be loaded."""
    svc = service(settings)
    try:
        with nullcontext() if svc.model_loaded else st.spinner("Loading the model…"):
            return svc.analyzer, None
    except AuscultError as exc:
        return None, str(exc)
    except Exception as exc:  # a broken model file must not take the other pages down
        log.exception("model failed to load")
        return None, f"the model could not be loaded ({type(exc).__name__}: {exc})"


def model_ready(settings: Settings) -> bool:
    """Load the model for a page that analyses; say why on the page when it cannot be."""
    _, problem = load_analyzer(settings)
    if problem:
        st.error(f"The model is not available: {problem}", icon=":material/error:")
    return problem is None


def demo_recordings(settings: Settings) -> tuple[Demo, ...]:
    """The demo list, built once per process and data location."""
    return _demo_recordings(str(settings.work_dir), str(settings.data_dir))


@st.cache_resource(show_spinner=False)
def _demo_recordings(work_dir: str, data_dir: str) -> tuple[Demo, ...]:
    del work_dir, data_dir  # cache keys
    return tuple(find_demo_recordings(get_settings()))


def find_demo_recordings(settings: Settings, per_class: int = 1) -> list[Demo]:
    """Synthetic demo recordings (written on first use) and a few labelled PhysioNet records.

    From PhysioNet, ``per_class`` normal and abnormal records of every database, labelled
    with their reference label so the model's answer can be compared with it.
    """
    demos: list[Demo] = []
    try:
        from auscult.synthetic import write_demo_set

        for path in write_demo_set(settings.work_dir / "demo"):
            words = path.stem.removeprefix("synthetic_").replace("_", " ")
            demos.append(Demo(f"Synthetic — {words}", path, None))
    except Exception:  # no synthetic set is no reason to fail the page
        log.exception("could not write the synthetic demo set")
    try:
        from auscult.datasets import read_physionet

        records = read_physionet(settings.data_dir)
    except (AuscultError, OSError, ValueError):  # no data folder: synthetic demos only
        records = []
    picked: dict[tuple[str, int], int] = {}
    for rec in sorted(records, key=lambda r: (r.database, r.name)):
        if picked.get((rec.database, rec.label), 0) >= per_class:
            continue
        picked[(rec.database, rec.label)] = picked.get((rec.database, rec.label), 0) + 1
        ref = "abnormal" if rec.label == 1 else "normal"
        demos.append(Demo(f"PhysioNet {rec.name} — reference: {ref}", rec.path, ref))
    return demos
