"""The launcher: checks, start, health, the printed QR address, tunnel, clean stop, no orphans."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

import launcher
import qr_generator
from config import PROJECT_ROOT, Settings

FAKE_BIN = Path(__file__).parent / "fake_bin"
PLACEHOLDER_APP = 'import streamlit as st\nst.title("Auscult placeholder")\n'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_path(tmp_path_factory) -> Path:
    """The real analyzer once it exists; until then a minimal Streamlit script."""
    real = PROJECT_ROOT / "app.py"
    if real.exists():
        return real
    path = tmp_path_factory.mktemp("app") / "placeholder_app.py"
    path.write_text(PLACEHOLDER_APP)
    return path


def path_without_cloudflared() -> str:
    """PATH minus any folder holding a real cloudflared: a test must never open a tunnel."""
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(d for d in dirs if d and not (Path(d) / "cloudflared").exists())


class Run:
    """``python launcher.py`` as a user would start it, with its output collected."""

    def __init__(
        self, app: Path, work: Path, *extra: str, path: str | None = None, env: dict | None = None
    ):
        self.port, self.recorder_port, self.api_port = free_port(), free_port(), free_port()
        self.work = work
        full_env = dict(
            os.environ,
            AUSCULT_WORK_DIR=str(work),
            AUSCULT_RECORDER_HOST="127.0.0.1",  # tests keep even the phone page off the LAN
            PYTHONUNBUFFERED="1",
            PATH=path if path is not None else path_without_cloudflared(),
            **(env or {}),
        )
        full_env.pop("AUSCULT_LAN_IP", None)
        cmd = [
            sys.executable,
            str(PROJECT_ROOT / "launcher.py"),
            "--no-browser",
            "--app",
            str(app),
            "--port",
            str(self.port),
            "--recorder-port",
            str(self.recorder_port),
            "--api-port",
            str(self.api_port),
            *extra,
        ]
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            cmd,
            cwd=PROJECT_ROOT,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in iter(self.proc.stdout.readline, b""):
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.proc.poll() is not None:
                time.sleep(0.3)
                if text in self.output:
                    return
                pytest.fail(
                    f"launcher exited {self.proc.returncode} before {text!r}:\n{self.output}"
                )
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"no {text!r} after {timeout} s:\n{self.output}")
            time.sleep(0.1)

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def kill(self) -> None:
        for p in self.descendants():
            p.kill()
        self.proc.kill()

    @property
    def phone_url(self) -> str:
        return re.search(r"Phone recording page:\s+(\S+)", self.output).group(1)


def assert_all_gone(processes: list[psutil.Process], timeout: float = 10.0) -> None:
    _gone, alive = psutil.wait_procs(processes, timeout=timeout)
    alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"processes left behind: {[(p.pid, p.cmdline()) for p in alive]}"


def get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5, context=context) as r:
        return r.status, r.read()


def websocket_upgrade(port: int, host: str) -> bytes:
    """The status line Streamlit answers a websocket upgrade from a page at ``host``."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}:{port}\r\nOrigin: http://{host}:{port}"
        f"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: streamlit\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request.encode())
        return s.recv(200).split(b"\r\n")[0]


def port_closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


# --------------------------------------------------------------------------------------
# fast checks, in process
# --------------------------------------------------------------------------------------
def test_missing_app_gives_a_clear_error(tmp_path, capsys):
    code = launcher.main(["--no-browser", "--app", str(tmp_path / "app.py")])
    out = capsys.readouterr().out
    assert code == 2
    assert "desktop analyzer was not found" in out
    assert "--app" in out


def test_busy_port_gives_a_clear_error(tmp_path, capsys, app_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = launcher.main(["--no-browser", "--app", str(app_path), "--port", str(port)])
    out = capsys.readouterr().out
    assert code == 2
    assert f"port {port} for the analyzer is already in use" in out
    assert "--port" in out


def test_busy_recorder_port_names_its_option():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        message = launcher.port_problem(
            "127.0.0.1", port, "phone recording page", "--recorder-port"
        )
    assert message
    assert "--recorder-port" in message
    assert str(port) in message


def test_missing_packages_are_named_with_the_install_command(monkeypatch, capsys, app_path):
    monkeypatch.setattr(launcher, "check_dependencies", lambda: ["qrcode", "uvicorn"])
    assert launcher.main(["--no-browser", "--app", str(app_path)]) == 2
    out = capsys.readouterr().out
    assert "qrcode, uvicorn" in out
    assert "pip install -r requirements.txt -c constraints.txt" in out


def test_check_dependencies_reports_missing_modules():
    assert launcher.check_dependencies({"json": "json", "no_such_module_xyz": "xyz-pkg"}) == [
        "xyz-pkg"
    ]


def test_tunnel_address_is_read_from_cloudflared_output():
    proc = subprocess.Popen(
        [
            str(FAKE_BIN / "cloudflared"),
            "tunnel",
            "--url",
            "https://localhost:1",
            "--no-tls-verify",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, "FAKE_CLOUDFLARED_HOST": "abc-def"},
    )
    try:
        found = []
        for raw in iter(proc.stderr.readline, b""):
            url = launcher.tunnel_url_from_line(raw.decode())
            if url:
                found.append(url)
            if b"Registered tunnel connection" in raw:
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert found == ["https://abc-def.trycloudflare.com"]  # not developers.cloudflare.com
    assert launcher.tunnel_url_from_line("INF see https://developers.cloudflare.com/x") is None


# --------------------------------------------------------------------------------------
# the real thing, as a user starts it
# --------------------------------------------------------------------------------------
def test_launcher_serves_all_prints_qr_and_stops_cleanly_on_sigterm(
    tmp_path, app_path, wav_bytes, heart_8k
):
    run = Run(app_path, tmp_path / "work", "--tunnel")  # no cloudflared on PATH: LAN fallback
    try:
        run.wait_for("Press Ctrl-C")
        status, body = get(f"http://127.0.0.1:{run.port}/_stcore/health")
        assert (status, body) == (200, b"ok")
        cert = tmp_path / "work" / "tls" / "cert.pem"
        tls = ssl.create_default_context(cafile=str(cert))  # verified against our own cert
        status, body = get(f"https://127.0.0.1:{run.recorder_port}/healthz", tls)
        assert status == 200
        assert b"auscult-recorder" in body

        lan = qr_generator.lan_address(Settings())
        token = re.search(r"\?t=([A-Za-z0-9_-]+)$", run.phone_url).group(1)
        assert run.phone_url == f"https://{lan.ip}:{run.recorder_port}/?t={token}"
        assert len(token) >= 20
        assert "cloudflared is not installed" in run.output  # said how, and carried on
        from validation.phase2_validation import decode_qr_text, terminal_qr

        assert decode_qr_text(terminal_qr(run.output)) == [run.phone_url]
        # the token in the printed address is the one the phone page accepts
        req = urllib.request.Request(
            f"https://127.0.0.1:{run.recorder_port}/api/session", headers={"X-Auscult-Token": token}
        )
        with urllib.request.urlopen(req, timeout=5, context=tls) as r:
            assert r.status == 200

        # a phone upload is analysed by the worker with no desktop page open
        upload = urllib.request.Request(
            f"https://127.0.0.1:{run.recorder_port}/api/recordings?site=mitral",
            data=wav_bytes(heart_8k, 8000),
            headers={"X-Auscult-Token": token, "Content-Type": "audio/wav"},
        )
        with urllib.request.urlopen(upload, timeout=10, context=tls) as r:
            entry_id = json.loads(r.read())["id"]
        sent, status = time.monotonic(), "pending"
        while status != "done" and time.monotonic() - sent < 20:
            _, body = get(f"http://127.0.0.1:{run.api_port}/v1/analyses/{entry_id}")
            status = json.loads(body)["status"]
            time.sleep(0.05)
        assert status == "done"
        print(
            f"phone upload analysed by the worker {time.monotonic() - sent:.2f} s after it arrived"
        )
        assert json.loads(get(f"http://127.0.0.1:{run.api_port}/health")[1])["ready"]
        # DNS rebinding: the analyzer's websocket answers only its own host names
        assert websocket_upgrade(run.port, "evil.example") == b"HTTP/1.1 403 Forbidden"
        assert websocket_upgrade(run.port, "127.0.0.1") == b"HTTP/1.1 101 Switching Protocols"
        # history, logs and the pairing code are this user's only
        work = tmp_path / "work"
        for private in (work / "auscult.db", work / "logs" / "recorder.log", work / "pairing.json"):
            assert private.stat().st_mode & 0o077 == 0, private
        assert f"http://127.0.0.1:{run.api_port}/docs" in run.output

        children = run.descendants()
        names = " ".join(" ".join(p.cmdline()) for p in children)
        assert "streamlit" in names
        assert "mobile_recorder.py" in names
        assert "api.py" in names
        assert "auscult.worker" in names
        assert all(os.getpgid(p.pid) == p.pid for p in children)  # each in its own group

        run.proc.send_signal(signal.SIGTERM)
        assert run.proc.wait(timeout=20) == 0
        assert_all_gone(children)
        assert port_closed(run.port)
        assert port_closed(run.recorder_port)
        assert port_closed(run.api_port)
        assert "Stopped." in run.output
    finally:
        if run.proc.poll() is None:
            run.kill()


def test_tunnel_address_goes_into_the_qr_and_a_dead_child_stops_everything(tmp_path, app_path):
    args_file = tmp_path / "cloudflared-args.txt"
    path = os.pathsep.join([str(FAKE_BIN), path_without_cloudflared()])
    run = Run(
        app_path,
        tmp_path / "work",
        "--tunnel",
        path=path,
        env={"FAKE_CLOUDFLARED_ARGS": str(args_file), "FAKE_CLOUDFLARED_HOST": "calm-river-test"},
    )
    try:
        run.wait_for("Press Ctrl-C")
        assert run.phone_url.startswith("https://calm-river-test.trycloudflare.com/?t=")
        assert args_file.read_text().split() == [
            "tunnel",
            "--url",
            f"https://localhost:{run.recorder_port}",
            "--no-tls-verify",
        ]
        from validation.phase2_validation import decode_qr_text, terminal_qr

        assert decode_qr_text(terminal_qr(run.output)) == [run.phone_url]

        children = run.descendants()
        recorder = next(p for p in children if "mobile_recorder.py" in " ".join(p.cmdline()))
        recorder.kill()  # a crash: the launcher must notice, say so, and stop the rest
        assert run.proc.wait(timeout=20) == 1
        assert "The recorder stopped unexpectedly" in run.output
        assert_all_gone(children)
        assert port_closed(run.port)
    finally:
        if run.proc.poll() is None:
            run.kill()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_children_stop_even_when_the_launcher_is_killed_outright(tmp_path, app_path):
    run = Run(app_path, tmp_path / "work")
    try:
        run.wait_for("Press Ctrl-C")
        children = run.descendants()
        # analyzer, phone page, REST API, worker
        assert len(children) == 4, [c.cmdline() for c in children]
        run.proc.kill()  # SIGKILL: no handler runs, the kernel tells the children
        run.proc.wait(timeout=10)
        assert_all_gone(children, timeout=30.0)  # their shutdown is slow on a loaded machine
    finally:
        if run.proc.poll() is None:
            run.kill()


def test_phase2_validation_passes_against_the_launched_servers(app_path, tmp_path):
    env = dict(os.environ, AUSCULT_RECORDER_HOST="127.0.0.1", PATH=path_without_cloudflared())
    env.pop("AUSCULT_LAN_IP", None)
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "validation" / "phase2_validation.py"),
            "--app",
            str(app_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[FAIL]" not in result.stdout
    assert re.search(r"Result: \d+ checks passed, 0 failed", result.stdout)


def test_fake_cloudflared_is_executable():
    assert os.access(FAKE_BIN / "cloudflared", os.X_OK)
