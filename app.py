"""Auscult desktop analyzer: upload or record a heart sound, see the result, keep a history.

    streamlit run app.py            # or `python launcher.py`, which also starts the phone page,
                                    # the REST API and the analysis worker

The entry point only builds the navigation: one module per page under ``desktop/pages``,
the shared result view in ``desktop/views.py``, the process-wide service (history store and
model) in ``desktop/resources.py``. Every page, whichever is open, shows a notice when a
phone recording has been analysed, with a link to it.
"""

from __future__ import annotations

import streamlit as st

from desktop.pages.analyze import page_analyze
from desktop.pages.batch import page_batch
from desktop.pages.ecg import page_ecg
from desktop.pages.history import page_history
from desktop.pages.model import page_model
from desktop.pages.monitoring import page_monitoring
from desktop.pages.phone import page_phone
from desktop.resources import service
from desktop.views import init_session

PAGES = {
    "analyze": (page_analyze, "Analyze", ":material/graphic_eq:"),
    "phone": (page_phone, "Phone inbox", ":material/smartphone:"),
    "batch": (page_batch, "Batch", ":material/library_music:"),
    "ecg": (page_ecg, "ECG", ":material/ecg_heart:"),
    "history": (page_history, "History", ":material/history:"),
    "monitoring": (page_monitoring, "Monitoring", ":material/monitoring:"),
    "model": (page_model, "Model", ":material/info:"),
}
#: Sources whose finished analyses are announced on every page.
ANNOUNCED_SOURCES = ("phone", "inbox", "api")
#: Less empty space above the page title; the top navigation already frames the page.
_CSS = "<style>.block-container{padding-top:3.2rem;padding-bottom:2rem}</style>"


@st.fragment(run_every=1.0)
def announce_arrivals() -> None:
    """A notice on any page when a recording from the phone (or the inbox, or the API) has
    been analysed since this tab opened, linking to it in History."""
    store = service().store
    newest = [
        e for src in ANNOUNCED_SOURCES for e in store.entries(source=src, status="done", limit=3)
    ]
    seen = st.session_state.get("announced_up_to")
    top = max((e.id for e in newest), default=0)
    if seen is None:  # the tab just opened: announce only what arrives from now on
        st.session_state.announced_up_to = top
        return
    for entry in sorted((e for e in newest if e.id > seen), key=lambda e: e.id):
        where = f" ({entry.site})" if entry.site else ""
        st.toast(
            f"**{entry.source.capitalize()} recording{where} analysed: {entry.label}.** "
            f"[Open it](/history?entry={entry.id})",
            icon=":material/notifications:",
            duration="long",
        )
    st.session_state.announced_up_to = max(seen, top)


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
    announce_arrivals()
    page.run()


if __name__ == "__main__":
    main()
