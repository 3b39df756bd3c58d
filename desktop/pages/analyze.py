"""Analyze page: upload a recording or pick a demo, see the result at once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import streamlit as st

from auscult.errors import AuscultError
from auscult.reading import DISCLAIMER
from auscult.service import Analysed
from auscult.store import SITES
from config import get_settings
from desktop.resources import demo_recordings, model_ready, service
from desktop.result_view import listening_wav, render_result
from desktop.views import UPLOAD_TYPES, Shown

__all__ = ["page_analyze"]

log = logging.getLogger(__name__)


def analyse_into_session(action: Callable[[], Analysed], name: str, reference: str | None) -> None:
    """Run an analysis; put its result or its human error message in the session."""
    started = time.perf_counter()
    try:
        with st.spinner(f"Analysing {name}…"):
            st.session_state.current = Shown.of(action(), reference)
        st.session_state.upload_error = None
        log.info("analysed %s in %.2f s", name, time.perf_counter() - started)
    except AuscultError as exc:
        st.session_state.current, st.session_state.upload_error = None, (name, str(exc))
    except Exception as exc:  # the app keeps working whatever the file does
        log.exception("analysis of %s failed", name)
        st.session_state.current = None
        st.session_state.upload_error = (name, f"unexpected error ({type(exc).__name__}: {exc})")


def page_analyze() -> None:
    settings = get_settings()
    st.title("Analyze a heart sound")
    st.caption(f":material/medical_information: {DISCLAIMER}")
    if not model_ready(settings):
        return
    svc = service(settings)

    upload_col, demo_col = st.columns(2, gap="large")
    with upload_col:
        site_col, patient_col = st.columns(2)
        site = site_col.selectbox(
            "Site", (None, *SITES), format_func=lambda s: s or "not given", key="upload_site"
        )
        patient = patient_col.text_input(
            "Patient or exam id", key="upload_patient", max_chars=100, placeholder="optional"
        )
        uploaded = st.file_uploader(
            "Upload a recording (WAV, FLAC, MP3, OGG, M4A/MP4, WebM)",
            type=list(UPLOAD_TYPES),
            key="upload",
            max_upload_size=max(1, settings.max_upload_bytes // (1024 * 1024)),
        )
        if uploaded is not None and uploaded.file_id != st.session_state.upload_done:
            st.session_state.upload_done = uploaded.file_id
            analyse_into_session(
                lambda: svc.analyse_upload(
                    uploaded.getvalue(), uploaded.name, site=site, patient_id=patient or None
                ),
                uploaded.name,
                None,
            )
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
                wav = listening_wav(str(demos[choice].path), bell=False)
                if wav is not None:
                    st.audio(wav, format="audio/wav")
            if go.button("Analyse demo", icon=":material/play_arrow:", type="primary"):
                demo = demos[choice]
                st.session_state.upload_done = uploaded.file_id if uploaded is not None else None
                analyse_into_session(
                    lambda: svc.analyse_file(demo.path), demo.path.name, demo.reference
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
