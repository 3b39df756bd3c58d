"""Auscult desktop analyzer: upload or record a heart sound, see the result, keep a history.

    streamlit run app.py            # or `python launcher.py`, which also starts the phone page

Five pages built by :func:`main` with ``st.navigation``: Analyze, Phone inbox, Batch,
History and Model. The model and the history database are opened once per process
(``st.cache_resource``); every analysis goes through :class:`auscult.analyzer.Analyzer` and
is stored in :class:`auscult.store.Store`. The functions under "actions" do the work and call
no Streamlit API, so tests can drive them with bytes and paths; the page functions only lay
out what they return.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import streamlit as st

import utils
from auscult.analyzer import AnalysisResult, Analyzer
from auscult.batch import BatchRow, analyze_many, audio_paths, csv_text
from auscult.errors import AuscultError, InvalidAudioError
from auscult.inbox import audio_extension, inbox_filename, write_atomically
from auscult.plots import LABEL_COLOURS, analysis_figure, figure_png, gauge_figure
from auscult.reading import DISCLAIMER, percent_pair, reading
from auscult.store import SOURCES, Entry, Store
from config import Settings, get_settings
from desktop.model_card import page_model

log = logging.getLogger(__name__)

#: File endings offered in the upload dialogs.
UPLOAD_TYPES = tuple(e.lstrip(".") for e in utils.SUPPORTED_EXTENSIONS)
#: How often the phone inbox looks for new recordings (seconds).
POLL_S = 0.5
#: A file dropped into the inbox folder is picked up once it has not changed for this long.
SETTLE_S = 0.25
#: Sources whose recordings show up in the phone inbox.
INBOX_SOURCES = ("phone", "inbox")
_MEDIA_TYPES = {
    ".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".ogg": "audio/ogg",
    ".oga": "audio/ogg", ".opus": "audio/ogg", ".m4a": "audio/mp4", ".mp4": "audio/mp4",
    ".aac": "audio/aac", ".webm": "audio/webm", ".aif": "audio/aiff", ".aiff": "audio/aiff",
    ".caf": "audio/x-caf",
}  # fmt: skip
_TINTS = {"normal": "#ebfbee", "abnormal": "#fff5f5", "unsure": "#fff9db"}


# --------------------------------------------------------------------------------------
# what the result view shows
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shown:
    """One analysis as the result view draws it."""

    key: str  # unique per analysis: caches the rendered figures
    name: str  # file name shown to the user
    source: str
    result: AnalysisResult
    model_input: utils.ModelInput | None  # None when the audio is gone
    audio_path: str | None = None
    entry_id: int | None = None
    site: str | None = None
    created_at: str | None = None
    reference: str | None = None  # reference label of a demo recording, when known


@dataclass(frozen=True)
class Demo:
    """A recording offered in the demo picker."""

    title: str
    path: Path
    reference: str | None  # "normal" / "abnormal" from PhysioNet REFERENCE.csv


# --------------------------------------------------------------------------------------
# resources: loaded once per process
# --------------------------------------------------------------------------------------
@st.cache_resource(show_spinner="Loading the model…")
def _analyzer(models_dir: str, model_name: str) -> Analyzer:
    del models_dir, model_name  # cache keys: a new model location loads a new model
    return Analyzer(settings=get_settings())


def load_analyzer(settings: Settings) -> tuple[Analyzer | None, str | None]:
    """The process-wide analyzer, or ``(None, message)`` when the model cannot be loaded."""
    try:
        return _analyzer(str(settings.models_dir), settings.model_name), None
    except AuscultError as exc:
        return None, str(exc)
    except Exception as exc:  # a broken model file must not take the other pages down
        log.exception("model failed to load")
        return None, f"the model could not be loaded ({type(exc).__name__}: {exc})"


@st.cache_resource
def _store(db_path: str) -> Store:
    return Store(db_path)


def load_store(settings: Settings) -> Store:
    """The process-wide history store for ``settings.db_path``."""
    return _store(str(settings.db_path))


@st.cache_resource
def _inbox_lock(db_path: str) -> threading.Lock:
    """One analysis of the inbox at a time, however many browser tabs poll it."""
    del db_path
    return threading.Lock()


# --------------------------------------------------------------------------------------
# actions: no Streamlit calls below this line until "pages"
# --------------------------------------------------------------------------------------
def _upload_name(filename: str, data: bytes, source: str) -> str:
    """A server-chosen file name that keeps a sensible ending."""
    ext = Path(filename).suffix.lower()
    if ext not in utils.SUPPORTED_EXTENSIONS:
        ext = audio_extension(data)
    return inbox_filename(source, None, ext)


def analyse_upload(
    data: bytes,
    filename: str,
    *,
    analyzer: Analyzer,
    store: Store,
    settings: Settings,
    source: str = "upload",
) -> Shown:
    """Analyse uploaded bytes, keep the audio under ``uploads_dir`` and store the result.

    Raises :class:`InvalidAudioError` (nothing is saved or stored) when the bytes are not a
    usable recording. The audio is written first and removed again if the store refuses the
    row, so history never points at a missing file.
    """
    analysis = analyzer.analyze_detailed(bytes(data))
    path = write_atomically(settings.uploads_dir, _upload_name(filename, data, source), bytes(data))
    try:
        entry_id = store.record(
            source=source,
            filename=filename,
            result=analysis.result.to_dict(),
            audio_path=path,
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Shown(
        key=f"entry-{entry_id}",
        name=filename,
        source=source,
        result=analysis.result,
        model_input=analysis.model_input,
        audio_path=str(path),
        entry_id=entry_id,
    )


def analyse_file(
    path: Path,
    *,
    analyzer: Analyzer,
    store: Store,
    source: str = "demo",
    reference: str | None = None,
) -> Shown:
    """Analyse a file that stays where it is (a demo recording) and store the result."""
    analysis = analyzer.analyze_detailed(path)
    entry_id = store.record(
        source=source,
        filename=path.name,
        result=analysis.result.to_dict(),
        audio_path=path,
    )
    return Shown(
        key=f"entry-{entry_id}-{time.monotonic_ns()}",
        name=path.name,
        source=source,
        result=analysis.result,
        model_input=analysis.model_input,
        audio_path=str(path),
        entry_id=entry_id,
        reference=reference,
    )


def scan_inbox(store: Store, settings: Settings, settle_s: float = SETTLE_S) -> list[int]:
    """Register audio files dropped into ``inbox_dir`` by any process; return the new ids.

    Hidden files (``.part`` uploads in flight) and files changed in the last ``settle_s``
    seconds (still being copied) are left for the next scan.
    """
    folder = Path(settings.inbox_dir)
    if not folder.is_dir():
        return []
    known = store.known_paths()
    known |= {str(Path(p).resolve()) for p in known}
    now = time.time()
    new: list[int] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in utils.SUPPORTED_EXTENSIONS:
            continue
        if str(path) in known or str(path.resolve()) in known:
            continue
        try:
            if not path.is_file() or now - path.stat().st_mtime < settle_s:
                continue
        except OSError:  # removed between listing and stat
            continue
        new.append(store.add_pending(source="inbox", filename=path.name, audio_path=path))
    return new


def process_pending(store: Store, analyzer: Analyzer) -> list[int]:
    """Analyse every pending recording; failures are stored with their message, audio kept."""
    done: list[int] = []
    for entry in store.pending():
        if not entry.audio_path or not Path(entry.audio_path).is_file():
            store.fail(entry.id, "the audio file is missing; record again")
            done.append(entry.id)
            continue
        try:
            store.complete(entry.id, analyzer.analyze(entry.audio_path).to_dict())
        except AuscultError as exc:
            store.fail(entry.id, str(exc))
        except Exception as exc:  # one bad file must not stop the inbox
            log.exception("analysis of inbox entry %d failed", entry.id)
            store.fail(entry.id, f"could not analyse this recording ({type(exc).__name__})")
        done.append(entry.id)
    return done


def poll_inbox(store: Store, analyzer: Analyzer | None, settings: Settings) -> list[int]:
    """One inbox round: register dropped files, analyse what is pending; ids analysed."""
    lock = _inbox_lock(str(settings.db_path))
    if not lock.acquire(blocking=False):
        return []  # another tab is on it
    try:
        scan_inbox(store, settings)
        return process_pending(store, analyzer) if analyzer is not None else []
    finally:
        lock.release()


def shown_from_entry(entry: Entry, settings: Settings, *, arrays: bool = True) -> Shown | None:
    """Rebuild the result view of a stored analysis (``None`` unless it finished).

    With ``arrays`` the plot inputs are recomputed from the audio file at once; the pages
    pass ``arrays=False`` and let :func:`with_model_input` do it only when the figures are
    not cached yet.
    """
    if entry.status != "done" or not entry.result:
        return None
    shown = Shown(
        key=f"entry-{entry.id}-{entry.analysed_at}",
        name=entry.filename,
        source=entry.source,
        result=AnalysisResult.from_dict(entry.result),
        model_input=None,
        audio_path=entry.audio_path,
        entry_id=entry.id,
        site=entry.site,
        created_at=entry.created_at,
    )
    return with_model_input(shown, settings) if arrays else shown


def with_model_input(shown: Shown, settings: Settings) -> Shown:
    """``shown`` with the plot inputs recomputed from its audio file, when it is still there."""
    if shown.model_input is not None or not shown.audio_path:
        return shown
    if not Path(shown.audio_path).is_file():
        return shown
    try:
        mi = utils.model_input(utils.load_audio(shown.audio_path, settings), settings)
    except AuscultError:
        return shown
    return dataclasses.replace(shown, model_input=mi)


def run_batch(
    items: list[tuple[str, bytes]] | list[Path],
    *,
    analyzer: Analyzer,
    store: Store,
    settings: Settings,
    progress=None,
) -> list[BatchRow]:
    """Analyse uploads (``(name, bytes)``) or files; store every row as it finishes.

    Uploaded bytes are kept under ``uploads_dir`` so history can open them again; files
    on disk stay where they are.
    """
    saved: dict[int, Path | None] = {}
    for i, item in enumerate(items):
        if isinstance(item, tuple):
            name, data = item
            saved[i] = (
                write_atomically(settings.uploads_dir, _upload_name(name, data, "batch"), data)
                if data
                else None
            )
        else:
            saved[i] = Path(item)

    def on_row(done: int, total: int, row: BatchRow) -> None:
        name = Path(row.path).name
        try:
            store.record(
                source="batch",
                filename=name,
                result=row.result.to_dict() if row.result is not None else None,
                error=row.error or None,
                audio_path=saved[done - 1],
            )
        except Exception:  # history is a convenience here: the CSV row still stands
            log.exception("could not store batch row %s", row.path)
        if progress is not None:
            progress(done, total, row)

    return analyze_many(items, analyzer, progress=on_row)


def delete_entry(entry: Entry, store: Store, settings: Settings) -> None:
    """Delete a history row; audio the app owns (uploads, inbox) is deleted with it.

    Inbox audio must go too, or the next folder scan would register it again.
    """
    if entry.audio_path:
        path = Path(entry.audio_path)
        owned = (
            Path(settings.uploads_dir).resolve(),
            Path(settings.inbox_dir).resolve(),
        )
        if path.resolve().parent in owned:
            path.unlink(missing_ok=True)
    store.delete(entry.id)


def result_json(shown: Shown) -> str:
    """The downloadable JSON of one analysis."""
    return json.dumps(
        {
            "file": shown.name,
            "source": shown.source,
            "site": shown.site,
            "history_id": shown.entry_id,
            "result": shown.result.to_dict(),
            "reading": reading(shown.result).__dict__,
            "disclaimer": DISCLAIMER,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        indent=2,
    )


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


def local_time(stamp: str | None) -> str:
    """``2025-01-01 12:00`` in local time from a stored UTC ISO stamp."""
    if not stamp:
        return ""
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return stamp


def quality_word(quality: float, settings: Settings) -> str:
    if quality < settings.min_quality:
        return "poor"
    return "good" if quality >= 0.6 else "fair"


# --------------------------------------------------------------------------------------
# session state: every key, initialised in one place
# --------------------------------------------------------------------------------------
SESSION_DEFAULTS: dict[str, Any] = {
    "page": "analyze",  # the page shown at "/" (tests and deep links set it)
    "current": None,  # Shown on the Analyze page
    "upload_done": None,  # file_id of the last upload analysed (no re-analysis on rerun)
    "upload_error": None,  # (file name, message) of the last bad upload
    "batch_rows": None,  # list[BatchRow] of the last batch
    "batch_error": None,
    "phone_shown": None,  # Shown on the Phone inbox page
    "inbox_seen": None,  # newest inbox entry id when the page was opened
    "history_shown": None,  # Shown on the History page
    "figures": {},  # (Shown.key, "gauge" | "plot") → PNG
}


def init_session() -> None:
    for key, value in SESSION_DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = value.copy() if isinstance(value, dict) else value


# --------------------------------------------------------------------------------------
# the result view
# --------------------------------------------------------------------------------------
def _figure(shown: Shown, settings: Settings, which: str) -> bytes | None:
    """The rendered ``"gauge"`` or ``"plot"`` PNG of one result, cached in the session.

    Rendered one at a time, where the page shows them, so the result card is on screen
    before the slower three-panel plot is drawn. ``None`` for the plot when the audio is gone.
    """
    cache: dict[tuple[str, str], bytes | None] = st.session_state.figures
    if (shown.key, which) not in cache:
        r = shown.result
        if which == "gauge":
            png = figure_png(gauge_figure(r.probability, r.threshold, r.label, r.band), dpi=120)
        else:
            png = None
            mi = with_model_input(shown, settings).model_input
            if mi is not None:
                png = figure_png(
                    analysis_figure(
                        mi.signal,
                        settings.sample_rate,
                        mi.features,
                        settings.hop_length / settings.sample_rate,
                        (settings.mel_fmin, settings.mel_fmax),
                        r.window_starts_s,
                        r.window_s,
                        r.window_probabilities,
                        r.threshold,
                        reliable=r.reliable,
                    ),
                    dpi=110,
                )
        while len(cache) >= 16:  # keep the session small
            cache.pop(next(iter(cache)))
        cache[(shown.key, which)] = png
    return cache[(shown.key, which)]


def result_card(label: str, headline: str, subtitle: str) -> None:
    colour = LABEL_COLOURS.get(label, "#495057")
    st.markdown(
        f'<div class="auscult-card" style="border-left:10px solid {colour};'
        f'background:{_TINTS.get(label, "#f8f9fa")};padding:14px 22px;border-radius:10px">'
        f'<div style="font-size:3.2rem;font-weight:700;line-height:1.05;color:{colour}">'
        f"{headline}</div>"
        f'<div style="font-size:1.15rem;color:#495057;margin-top:2px">{subtitle}</div></div>',
        unsafe_allow_html=True,
    )


def render_result(shown: Shown, settings: Settings, key: str) -> None:
    """The result card, reading, plots, audio and JSON download of one analysis."""
    r = shown.result
    read = reading(r)
    where = f" · site: {shown.site}" if shown.site else ""
    ref = f" · reference label: **{shown.reference}**" if shown.reference else ""
    when = f" · {local_time(shown.created_at)}" if shown.created_at else ""
    st.caption(f"**{shown.name}** · {shown.source}{where}{when}{ref}")

    left, middle, right = st.columns([1.25, 0.95, 1.3], gap="medium")
    with left:
        result_card(r.label, read.headline, read.subtitle)
        st.caption(f":material/medical_information: **{DISCLAIMER.split('.')[0]}.**")
    with middle:
        st.image(_figure(shown, settings, "gauge"), width="stretch")
    with right:
        a, b = st.columns(2)
        p_text, t_text = percent_pair(r.probability, r.threshold)
        a.metric(
            "Probability abnormal" if r.reliable else "Probability (unreliable)",
            p_text,
            help=f"decision threshold {t_text}"
            + (
                f"; borderline (unsure) from {r.band[0]:.0%} to {r.band[1]:.0%}"
                if r.band[1] > r.band[0]
                else ""
            ),
        )
        b.metric("Heart rate", f"{r.heart_rate_bpm:.0f} bpm" if r.heart_rate_bpm else "—")
        a.metric(
            "Recording quality",
            quality_word(r.quality, settings),
            help=f"{r.quality:.2f} (0–1)",
        )
        b.metric("Duration", f"{r.duration_s:.1f} s")

    with st.container(border=True):
        st.markdown(f"**{read.summary}**")
        st.markdown(f"**Next step:** {read.next_step}")
        for tip in read.tips:
            st.markdown(f"- {tip}")
    for warning in r.warnings:
        st.warning(warning, icon=":material/warning:")

    plot_png = _figure(shown, settings, "plot")
    if plot_png is not None:
        st.image(plot_png, width="stretch")
    else:
        st.info("The audio file of this analysis is no longer there, so there are no plots.")

    audio, download = st.columns([3, 1], vertical_alignment="center")
    with audio:
        if shown.audio_path and Path(shown.audio_path).is_file():
            path = Path(shown.audio_path)
            st.audio(
                path.read_bytes(),
                format=_MEDIA_TYPES.get(path.suffix.lower(), "audio/wav"),
            )
    with download:
        st.download_button(
            "Download result (JSON)",
            result_json(shown),
            file_name=f"auscult-{Path(shown.name).stem}-{r.label}.json",
            mime="application/json",
            icon=":material/download:",
            key=f"{key}-json",
            on_click="ignore",
        )
    st.caption(f"{DISCLAIMER} Model {r.model_version}.")


# --------------------------------------------------------------------------------------
# pages
# --------------------------------------------------------------------------------------
def analysis_page(title: str) -> tuple[Settings, Analyzer, Store] | None:
    """Title, settings, model and history of a page that analyses; None when no model."""
    settings = get_settings()
    st.title(title)
    st.caption(f":material/medical_information: {DISCLAIMER}")
    analyzer, problem = load_analyzer(settings)
    if problem:
        st.error(f"The model is not available: {problem}", icon=":material/error:")
        return None
    return settings, analyzer, load_store(settings)


def page_analyze() -> None:
    ready = analysis_page("Analyze a heart sound")
    if ready is None:
        return
    settings, analyzer, store = ready

    upload_col, demo_col = st.columns(2, gap="large")
    with upload_col:
        uploaded = st.file_uploader(
            "Upload a recording (WAV, FLAC, MP3, OGG, M4A/MP4, WebM)",
            type=list(UPLOAD_TYPES),
            key="upload",
            max_upload_size=max(1, settings.max_upload_bytes // (1024 * 1024)),
        )
        if uploaded is not None and uploaded.file_id != st.session_state.upload_done:
            st.session_state.upload_done = uploaded.file_id
            analyse_into_session(
                lambda: analyse_upload(
                    uploaded.getvalue(), uploaded.name, analyzer=analyzer, store=store,
                    settings=settings,
                ),
                uploaded.name,
            )  # fmt: skip
    with demo_col:
        demos = demo_recordings(settings)
        if demos:
            choice = st.selectbox(
                "…or try a demo recording",
                range(len(demos)),
                format_func=lambda i: demos[i].title,
                key="demo_choice",
            )
            go, listen = st.columns([1, 2.2], vertical_alignment="center")
            with listen:
                path = demos[choice].path
                st.audio(
                    path.read_bytes(), format=_MEDIA_TYPES.get(path.suffix.lower(), "audio/wav")
                )
            if go.button("Analyse demo", icon=":material/play_arrow:", type="primary"):
                demo = demos[choice]
                st.session_state.upload_done = uploaded.file_id if uploaded is not None else None
                analyse_into_session(
                    lambda: analyse_file(
                        demo.path,
                        analyzer=analyzer,
                        store=store,
                        reference=demo.reference,
                    ),
                    demo.path.name,
                )
        else:
            st.caption("No demo recordings are available.")

    if st.session_state.upload_error:
        name, message = st.session_state.upload_error
        st.error(f"**{name}** cannot be analysed: {message}", icon=":material/error:")
    elif st.session_state.current is not None:
        st.divider()
        render_result(st.session_state.current, settings, key="analyze")
    else:
        st.info(
            "Upload a recording of 10–30 s taken at the aortic, pulmonic, tricuspid or mitral "
            "site, or record one with the phone (Phone inbox page).",
            icon=":material/info:",
        )


def analyse_into_session(action, name: str) -> None:
    """Run an analysis; put its result or its human error message in the session."""
    started = time.perf_counter()
    try:
        with st.spinner(f"Analysing {name}…"):
            st.session_state.current = action()
        st.session_state.upload_error = None
        log.info("analysed %s in %.2f s", name, time.perf_counter() - started)
    except InvalidAudioError as exc:
        st.session_state.current, st.session_state.upload_error = None, (name, str(exc))
    except AuscultError as exc:
        st.session_state.current, st.session_state.upload_error = None, (name, str(exc))
    except Exception as exc:  # the app keeps working whatever the file does
        log.exception("analysis of %s failed", name)
        st.session_state.current = None
        st.session_state.upload_error = (
            name,
            f"unexpected error ({type(exc).__name__}: {exc})",
        )


_PERCENT_COLUMN = st.column_config.ProgressColumn(
    "probability", format="%.0f%%", min_value=0.0, max_value=100.0, color="#868e96"
)
_WORD_COLOURS = {
    "normal": LABEL_COLOURS["normal"],
    "abnormal": LABEL_COLOURS["abnormal"],
    "unsure": LABEL_COLOURS["unsure"],
    "failed": "#868e96",
    "analysing": "#1c7ed6",
}


def _label_word(label: str | None) -> str:
    """What a table says for a label or a status."""
    return {"error": "failed", "pending": "analysing"}.get(label or "", label or "")


def _coloured(rows: list[dict[str, Any]], column: str):
    """A table whose ``column`` is written in the label colours (a pandas Styler)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    return frame.style.map(
        lambda v: f"color: {_WORD_COLOURS[v]}; font-weight: 600" if v in _WORD_COLOURS else "",
        subset=[column],
    )


def _status_text(entry: Entry) -> str:
    colours = {"normal": "green", "abnormal": "red", "unsure": "orange"}
    if entry.status == "done" and entry.label:
        return f":{colours.get(entry.label, 'gray')}[**{entry.label}**]"
    if entry.status == "error":
        return ":gray[**failed**]"
    return ":blue[analysing…]"


def inbox_entries(store: Store, limit: int = 8) -> list[Entry]:
    rows = [e for src in INBOX_SOURCES for e in store.entries(source=src, limit=limit)]
    return sorted(rows, key=lambda e: e.id, reverse=True)[:limit]


@st.fragment(run_every=POLL_S)
def inbox_feed() -> None:
    """Polls the store and the inbox folder; opens a newly analysed recording."""
    settings = get_settings()
    store = load_store(settings)
    analyzer, problem = load_analyzer(settings)
    poll_inbox(store, analyzer, settings)
    entries = inbox_entries(store)
    if problem:
        st.error(f"Recordings arrive but cannot be analysed: {problem}")
    if not entries:
        st.caption(":material/hourglass_empty: Waiting for the first recording…")
        return
    newest_done = next((e for e in entries if e.status != "pending"), None)
    if newest_done is not None and newest_done.id > (st.session_state.inbox_seen or 0):
        st.session_state.inbox_seen = newest_done.id
        st.session_state.phone_shown = newest_done.id
        st.rerun(scope="app")  # draw the result view outside this fragment
    shown = st.session_state.phone_shown
    for entry in entries:
        c1, c2, c3, c4 = st.columns([1.0, 2.8, 3.0, 1.0], vertical_alignment="center")
        c1.markdown(f"**{local_time(entry.created_at)[11:]}**")
        where = f"phone · {entry.site}" if entry.source == "phone" and entry.site else entry.source
        c2.markdown(where if entry.source == "phone" else f"{where} · {entry.filename}")
        c3.markdown(_status_text(entry) + (f" — {entry.error}" if entry.error else ""))
        if entry.id == shown:
            c4.caption(":material/arrow_downward: shown")
        elif entry.status == "done" and c4.button("Open", key=f"open-{entry.id}", type="tertiary"):
            st.session_state.phone_shown = entry.id
            st.rerun(scope="app")


@st.cache_data(show_spinner=False)
def _qr_png(url: str) -> bytes:
    from qr_generator import qr_png

    return qr_png(url, scale=6)


def page_phone() -> None:
    settings = get_settings()
    st.title("Phone inbox")
    qr_col, help_col, inbox_col = st.columns([0.8, 1.3, 2.9], gap="medium")
    if settings.recorder_url:
        with qr_col:
            try:
                st.image(_qr_png(settings.recorder_url), width="stretch")
            except Exception:  # a missing QR library still leaves the address
                log.exception("QR code failed")
        with help_col:
            st.markdown("**Scan with the phone** to open the recording page:")
            st.code(settings.recorder_url, language=None, wrap_lines=True)
            st.caption(
                "Accept the certificate warning once, pick the site and press Record. "
                "The recording appears here within a second."
            )
    else:
        with qr_col:
            st.info(
                "The phone recording page is not running. Start Auscult with "
                "`python launcher.py` to pair a phone with a QR code.",
                icon=":material/smartphone:",
            )
    with help_col:
        st.caption(f"Audio files copied into `{settings.inbox_dir}` are analysed too.")
    if st.session_state.inbox_seen is None:  # open what arrives from now on
        done = [e.id for e in inbox_entries(load_store(settings)) if e.status != "pending"]
        st.session_state.inbox_seen = max(done, default=0)
    with inbox_col:
        st.subheader("Latest recordings")
        inbox_feed()

    entry_id = st.session_state.phone_shown
    if entry_id is not None:
        entry = load_store(settings).get(entry_id)
        shown = shown_from_entry(entry, settings, arrays=False) if entry else None
        if shown is not None:
            st.divider()
            render_result(shown, settings, key="phone")


def page_batch() -> None:
    ready = analysis_page("Batch analysis")
    if ready is None:
        return
    settings, analyzer, store = ready
    st.caption(
        "Many recordings at once. Every result is kept in History; the CSV has the same "
        "columns as `scripts/batch_predict.py`: path, probability, label, duration_s, error."
    )
    files = st.file_uploader(
        "Recordings",
        type=list(UPLOAD_TYPES),
        accept_multiple_files=True,
        key="batch_files",
    )
    with st.expander("…or a folder on this computer"):
        folder = st.text_input("Folder (searched recursively)", key="batch_folder")
        run_folder = st.button("Analyse folder", key="batch_folder_go")
    run_files = st.button(
        f"Analyse {len(files)} file{'s' if len(files) != 1 else ''}" if files else "Analyse",
        type="primary",
        disabled=not files,
        icon=":material/play_arrow:",
    )
    items: list[Any] | None = None
    if run_files and files:
        items = [(f.name, f.getvalue()) for f in files]
    elif run_folder:
        path = Path(folder.strip()).expanduser()
        if not folder.strip() or not path.is_dir():
            st.session_state.batch_error = f"{folder!r} is not a folder on this computer"
        else:
            items = audio_paths([path])
            if not items:
                st.session_state.batch_error = f"no audio files found in {path}"
    if items:
        st.session_state.batch_error = None
        bar = st.progress(0.0, text=f"0 of {len(items)}")

        def progress(done: int, total: int, row: BatchRow) -> None:
            bar.progress(done / total, text=f"{done} of {total} · {Path(row.path).name}")

        st.session_state.batch_rows = run_batch(
            items, analyzer=analyzer, store=store, settings=settings, progress=progress
        )
        bar.empty()

    if st.session_state.batch_error:
        st.error(st.session_state.batch_error, icon=":material/error:")
    rows: list[BatchRow] | None = st.session_state.batch_rows
    if rows:
        counts = {
            lab: sum(r.label == lab for r in rows) for lab in ("normal", "abnormal", "unsure")
        }
        failed = sum(not r.ok for r in rows)
        cols = st.columns(4)
        cols[0].metric("Normal", counts["normal"])
        cols[1].metric("Abnormal", counts["abnormal"])
        cols[2].metric("Unsure", counts["unsure"])
        cols[3].metric("Failed", failed)
        st.dataframe(
            _coloured(
                [
                    r.csv_values()
                    | {"probability": None if r.probability is None else 100 * r.probability}
                    for r in rows
                ],
                "label",
            ),
            hide_index=True,
            column_config={
                "probability": _PERCENT_COLUMN,
                "error": st.column_config.TextColumn("error", width="large"),
            },
        )
        st.download_button(
            "Download CSV",
            csv_text(rows),
            file_name=f"auscult-batch-{datetime.now():%Y%m%d-%H%M}.csv",
            mime="text/csv",
            icon=":material/download:",
            on_click="ignore",
        )
        st.caption(DISCLAIMER)


def page_history() -> None:
    settings = get_settings()
    st.title("History")
    store = load_store(settings)
    f1, f2, _ = st.columns([1, 1, 2])
    source = f1.selectbox("Source", ("all", *SOURCES), key="hist_source")
    label = f2.selectbox(
        "Result", ("all", "normal", "abnormal", "unsure", "failed"), key="hist_label"
    )
    entries = store.entries(
        source=None if source == "all" else source,
        label=None if label in ("all", "failed") else label,
        status="error" if label == "failed" else None,
    )
    if not entries:
        st.info("No analyses yet." if source == label == "all" else "Nothing matches the filter.")
        return
    st.dataframe(
        _coloured(
            [
                {
                    "id": e.id,
                    "time": local_time(e.created_at),
                    "source": e.source,
                    "site": e.site or "",
                    "file": e.filename,
                    "result": _label_word(e.label if e.status == "done" else e.status),
                    "probability": None if e.probability is None else 100 * e.probability,
                    "duration_s": e.duration_s,
                    "error": e.error or "",
                }
                for e in entries
            ],
            "result",
        ),
        hide_index=True,
        column_config={
            "probability": _PERCENT_COLUMN,
            "duration_s": st.column_config.NumberColumn("duration (s)", format="%.1f"),
        },
        height=min(400, 38 + 35 * len(entries)),
    )
    by_id = {e.id: e for e in entries}
    pick, open_col, delete_col = st.columns([3, 0.6, 0.6], vertical_alignment="bottom")
    chosen = pick.selectbox(
        "Entry",
        list(by_id),
        format_func=lambda i: f"#{i} · {local_time(by_id[i].created_at)} · {by_id[i].filename}",
        key="hist_pick",
    )
    if open_col.button("Open", icon=":material/open_in_new:", type="primary", key="hist_open"):
        st.session_state.history_shown = chosen
    with delete_col.popover("Delete", icon=":material/delete:"):
        st.markdown(f"Delete entry #{chosen}? Audio the app saved is deleted too.")
        if st.button("Delete for good", type="primary", key="hist_delete"):
            delete_entry(by_id[chosen], store, settings)
            if st.session_state.history_shown == chosen:
                st.session_state.history_shown = None
            st.rerun()

    shown_id = st.session_state.history_shown
    entry = store.get(shown_id) if shown_id is not None else None
    if entry is not None:
        st.divider()
        if entry.status == "error":
            st.error(f"**{entry.filename}** could not be analysed: {entry.error}")
        elif entry.status == "pending":
            st.info(f"**{entry.filename}** is waiting for analysis (open the Phone inbox).")
        else:
            render_result(shown_from_entry(entry, settings, arrays=False), settings, key="history")


# --------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------
PAGES = {
    "analyze": (page_analyze, "Analyze", ":material/graphic_eq:"),
    "phone": (page_phone, "Phone inbox", ":material/smartphone:"),
    "batch": (page_batch, "Batch", ":material/library_music:"),
    "history": (page_history, "History", ":material/history:"),
    "model": (page_model, "Model", ":material/info:"),
}


#: Less empty space above the page title; the top navigation already frames the page.
_CSS = "<style>.block-container{padding-top:3.2rem;padding-bottom:2rem}</style>"


def main() -> None:
    st.set_page_config(page_title="Auscult", page_icon="🫀", layout="wide")
    st.html(_CSS)
    init_session()
    start = st.session_state.page if st.session_state.page in PAGES else "analyze"
    pages = [
        st.Page(fn, title=title, icon=icon, url_path=key, default=key == start)
        for key, (fn, title, icon) in PAGES.items()
    ]
    page = st.navigation(pages, position="top")
    page.run()


if __name__ == "__main__":
    main()
