"""The two servers the real-browser tests drive, each started on a free 127.0.0.1 port.

- :func:`analyzer_app` — ``streamlit run app.py`` as a child process, as the launcher starts it;
- :func:`recording_page` — the phone page's ASGI app (``mobile_recorder.create_app``) served by
  uvicorn in a thread of the test process, over HTTPS with a self-signed certificate from
  :mod:`auscult.tls` (or plain HTTP when asked).

Both are context managers that yield the base address once the server answers and stop it
on the way out.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from auscult.store import Store
from auscult.tls import ensure_certificate
from config import PROJECT_ROOT, Settings

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def analyzer_app(work: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """``streamlit run app.py`` with ``AUSCULT_WORK_DIR=work`` (plus ``env``); yields its URL.

    The app's output goes to ``work/streamlit.log`` and is shown when it fails to start.
    """
    port = free_port()
    log_path = work / "streamlit.log"
    child_env = {**os.environ, **(env or {}), "AUSCULT_WORK_DIR": str(work)}
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.address", HOST, "--server.headless", "true",
             "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
            cwd=PROJECT_ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://{HOST}:{port}"
        try:
            deadline = time.monotonic() + 60  # generous: the machine may be busy training
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail("streamlit did not start:\n" + log_path.read_text()[-3000:])
                    time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def recording_page(
    settings: Settings, token: str, store: Store | None = None, *, tls: bool = True
) -> Iterator[str]:
    """The phone recording page for ``token``, on ``127.0.0.1`` only; yields its base URL.

    With ``tls`` the certificate is made (or reused) in ``settings.work_dir / "tls"``.
    """
    import uvicorn

    import mobile_recorder

    port = free_port()
    ssl: dict[str, str] = {}
    if tls:
        cert = ensure_certificate(Path(settings.work_dir) / "tls", HOST)
        ssl = {"ssl_certfile": str(cert.cert_path), "ssl_keyfile": str(cert.key_path)}
    config = uvicorn.Config(
        mobile_recorder.create_app(settings, token, store),
        host=HOST,
        port=port,
        log_level="warning",
        **ssl,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("the recording page did not start")
            time.sleep(0.05)
        yield f"{'https' if tls else 'http'}://{HOST}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
