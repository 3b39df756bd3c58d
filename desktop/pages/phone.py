"""Phone inbox page: the pairing QR code and the recordings as they arrive.

With an exam (patient/exam id) typed in, the QR code carries it: the phone files every
recording under that id, and the page shows the exam's sites as they come in.

The page only shows: the analysis worker (started with the servers, see ``auscult.worker``)
analyses every recording whether this page is open or not.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from urllib.parse import urlencode

import streamlit as st

from auscult.pairing import PairingCode, Pairings, with_token
from auscult.store import SITES, Entry
from auscult.worker import read_heartbeat
from config import get_settings
from desktop.resources import load_analyzer, service
from desktop.result_view import render_result
from desktop.views import Shown, local_time, status_text

__all__ = ["page_phone"]

log = logging.getLogger(__name__)

#: How often the page looks for new recordings (seconds).
POLL_S = 0.5
#: Sources whose recordings show up in the phone inbox.
INBOX_SOURCES = ("phone", "inbox")


def inbox_entries(limit: int = 8) -> list[Entry]:
    store = service().store
    rows = [e for src in INBOX_SOURCES for e in store.entries(source=src, limit=limit)]
    return sorted(rows, key=lambda e: e.id, reverse=True)[:limit]


def worker_problem() -> str | None:
    """Why arriving recordings would not be analysed now, or None when they will be."""
    beat = read_heartbeat(get_settings())
    if beat is None or not beat.alive():
        return "the analysis worker is not running; restart Auscult with `python launcher.py`"
    return beat.problem or None


@st.fragment(run_every=POLL_S)
def inbox_feed() -> None:
    """Lists the newest inbox rows; opens a recording as soon as it has been analysed."""
    entries = inbox_entries()
    problem = worker_problem()
    if problem:
        st.error(f"Recordings arrive but are not analysed: {problem}")
    if not entries:
        st.caption(":material/hourglass_empty: Waiting for the first recording…")
        return
    newest_done = next((e for e in entries if e.status in ("done", "error")), None)
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
        c3.markdown(status_text(entry) + (f" — {entry.error}" if entry.error else ""))
        if entry.id == shown:
            c4.caption(":material/arrow_downward: shown")
        elif entry.status == "done" and c4.button("Open", key=f"open-{entry.id}", type="tertiary"):
            st.session_state.phone_shown = entry.id
            st.rerun(scope="app")


def phone_address(settings, exam: str = "") -> tuple[str, PairingCode | None]:
    """The address the phone opens, with the current pairing code, and that code; with
    ``exam``, the phone files its recordings under that patient/exam id.

    A fixed token (``pairing_token``, containers) stays in the address as given.
    """
    if not settings.recorder_url:
        return "", None
    url, code = settings.recorder_url, None
    if not settings.pairing_token:
        code = Pairings(settings).current()
        if code is not None:
            url = with_token(url, code.token)
    if exam:
        url += ("&" if "?" in url else "?") + urlencode({"exam": exam})
    return url, code


@st.cache_data(show_spinner=False)
def _qr_png(url: str) -> bytes:
    from qr_generator import qr_png

    return qr_png(url, scale=6)


def local_day_now() -> str:
    return date.today().isoformat()


@st.fragment(run_every=2.0)
def exam_progress(exam: str) -> None:
    """The open exam's sites so far, updated as recordings arrive."""
    found = service().exams(exam, limit=1)
    today = found[0] if found and found[0].day == local_day_now() else None
    if today is None:
        st.info(f"Exam **{exam}**: nothing recorded yet today.", icon=":material/assignment:")
        return
    done = len(SITES) - len(today.missing_sites)
    st.markdown(f"**Exam {exam}** · {done} of {len(SITES)} sites")
    st.progress(done / len(SITES))
    st.caption(today.summary())


def page_phone() -> None:
    settings = get_settings()
    st.title("Phone inbox")
    load_analyzer(settings)  # the model is ready before the first recording is opened
    qr_col, help_col, inbox_col = st.columns([0.8, 1.3, 2.9], gap="medium")
    with help_col:
        exam = st.text_input(
            "Exam (patient/exam id)",
            key="phone_exam",
            max_chars=100,
            placeholder="e.g. P-17 — pseudonymous, no names",
            help="The phone files what it records under this id: the four sites of one "
            "patient group into one exam (History → Exams). Change it before the next "
            "patient and scan the new code.",
        ).strip()
    url, code = phone_address(settings, exam)
    if url:
        with qr_col:
            try:
                st.image(_qr_png(url), width="stretch")
            except Exception:  # a missing QR library still leaves the address
                log.exception("QR code failed")
        with help_col:
            st.markdown("**Scan with the phone** to open the recording page:")
            st.code(url, language=None, wrap_lines=True)
            st.caption(
                "Accept the certificate warning once, pick the site and press Record. "
                "The recording appears here within a second."
            )
            if code is not None:
                until = datetime.fromtimestamp(code.expires_at).strftime("%H:%M")
                if code.valid():
                    st.caption(f":material/key: Pairing code valid until {until}.")
                else:
                    st.warning(f"The pairing code expired at {until}; make a new one.")
                if st.button(
                    "New pairing code",
                    icon=":material/refresh:",
                    key="new_pairing_code",
                    help="The phones paired now must scan the new code; the old one stops "
                    "working at once.",
                ):
                    Pairings(settings).new_code()
                    st.rerun()
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
        done = [e.id for e in inbox_entries() if e.status in ("done", "error")]
        st.session_state.inbox_seen = max(done, default=0)
    with inbox_col:
        if exam:
            exam_progress(exam)
        st.subheader("Latest recordings")
        inbox_feed()

    entry_id = st.session_state.phone_shown
    if entry_id is not None:
        entry = service(settings).store.get(entry_id)
        shown = Shown.of_entry(entry) if entry else None
        if shown is not None:
            st.divider()
            render_result(shown, settings, key="phone")
