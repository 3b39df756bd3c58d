"""Start Auscult: the desktop analyzer and the phone recording page, paired by a QR code,
with the REST API and the background analysis worker.

    python launcher.py                   # analyzer on 127.0.0.1, phone page on the LAN
    python launcher.py --tunnel          # phone on another network, through cloudflared
    python launcher.py --no-browser --port 8601 --recorder-port 8603 --api-port 8605

What it does, in order: checks the Python packages, picks the LAN address, makes (or reuses)
a self-signed TLS certificate under ``<work_dir>/tls``, draws a random pairing token, starts
the analyzer (Streamlit, 127.0.0.1 only), the recording page (HTTPS, on the LAN), the REST
API (127.0.0.1) and the analysis worker as child processes — each in its own process group,
with the token and the phone address in ``AUSCULT_PAIRING_TOKEN`` / ``AUSCULT_RECORDER_URL``
so the analyzer shows the same QR —, waits until all answer their health checks, prints the
addresses and a QR code, opens the analyzer in the browser, and then watches the children. A
child that dies is reported with the end of its log and the launcher exits non-zero; Ctrl-C
or SIGTERM stops everything.

Exit codes: 0 stopped on request, 1 a server failed, 2 the environment needs fixing first.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import queue
import re
import shutil
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.request
import webbrowser
from collections.abc import Callable
from pathlib import Path

from config import PROJECT_ROOT, Settings, get_settings
from supervisor import (
    Child,
    group_gone,
    report_dead,
    say,
    start_child,
    stop_children,
    wait_healthy,
)

__all__ = ["Child", "check_dependencies", "main", "port_problem", "tunnel_url_from_line"]

#: import name → package to install (runtime requirements the servers need to start).
REQUIRED_MODULES = {
    "streamlit": "streamlit",
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "multipart": "python-multipart",
    "qrcode": "qrcode",
    "PIL": "pillow",
    "cryptography": "cryptography",
    "numpy": "numpy",
    "scipy": "scipy",
    "soundfile": "soundfile",
    "av": "av",
    "ai_edge_litert": "ai-edge-litert",
}
TOKEN_ENV = "AUSCULT_PAIRING_TOKEN"
URL_ENV = "AUSCULT_RECORDER_URL"
_TUNNEL_URL = re.compile(r"https://[a-z0-9-]+\.trycloudflare\.com")
CLOUDFLARED_HELP = (
    "cloudflared is not installed, so there is no tunnel; the phone must be on the same Wi-Fi.\n"
    "  To reach the page from another network, install cloudflared and start again with "
    "--tunnel:\n"
    "    Debian/Ubuntu: see https://pkg.cloudflare.com/  ·  macOS: brew install cloudflared  ·  "
    "Windows: winget install --id Cloudflare.cloudflared"
)


def check_dependencies(modules: dict[str, str] | None = None) -> list[str]:
    """Packages that are missing, as install hints (empty when all are there)."""
    missing = []
    for module, package in (modules or REQUIRED_MODULES).items():
        if importlib.util.find_spec(module) is None:
            missing.append(package)
    return missing


def port_problem(host: str, port: int, what: str, option: str) -> str | None:
    """A clear message when ``host:port`` cannot be bound, else None."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # The servers set SO_REUSEADDR too, so a port in TIME_WAIT is not "busy".
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return (
                f"port {port} for the {what} is already in use on {host} ({exc.strerror}); "
                f"is Auscult already running? Stop the other program or choose another port "
                f"with {option} {port + 100}"
            )
    return None


def tunnel_url_from_line(line: str) -> str | None:
    """The public ``https://*.trycloudflare.com`` address in a line of cloudflared output."""
    match = _TUNNEL_URL.search(line)
    return match.group(0) if match else None


def _answers(url: str, expect: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as r:
            return r.status == 200 and expect in r.read(2000).decode(errors="replace")
    except (OSError, ValueError):
        return False


def _worker_alive(settings: Settings, pid: int) -> bool:
    """Whether the worker process ``pid`` has written a fresh heartbeat."""
    from auscult.worker import read_heartbeat

    beat = read_heartbeat(settings)
    return beat is not None and beat.pid == pid and beat.alive()


def _start_tunnel(
    args: argparse.Namespace,
    env: dict[str, str],
    logs: Path,
    children: list[Child],
    stop: threading.Event,
) -> str | None:
    """Start cloudflared for the phone page; its public address, or None (said why)."""
    exe = shutil.which("cloudflared")
    if exe is None:
        say(CLOUDFLARED_HELP)
        return None
    say("Starting a cloudflared tunnel for the phone page…")
    cmd = [exe, "tunnel", "--url", f"https://localhost:{args.recorder_port}", "--no-tls-verify"]
    tunnel = start_child("tunnel", cmd, env, logs / "tunnel.log", stderr_pipe=True)
    children.append(tunnel)
    found: queue.Queue = queue.Queue()
    threading.Thread(target=_read_tunnel, args=(tunnel, found), daemon=True).start()
    deadline = time.monotonic() + args.tunnel_timeout
    while time.monotonic() < deadline and not stop.is_set():
        try:
            return found.get(timeout=0.2)
        except queue.Empty:
            if not tunnel.alive:
                break
    say(f"The tunnel gave no public address (see {tunnel.log_path}); using the LAN address.")
    return None


def _server_commands(
    args: argparse.Namespace, s: Settings, app_path: Path, recorder_host: str, cert
) -> dict[str, list[str]]:
    """The command line of each child: analyzer, phone page, REST API, analysis worker."""
    py = sys.executable
    analyzer = [
        py, "-m", "streamlit", "run", str(app_path),
        "--server.address", s.analyzer_host, "--server.port", str(args.port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        # DNS rebinding: a web page whose name resolves to 127.0.0.1 must not reach the
        # analyzer (history, pairing code) through the browser.
        "--server.allowedHosts", "localhost", "--server.allowedHosts", "127.0.0.1",
    ]  # fmt: skip
    recorder = [
        py, str(PROJECT_ROOT / "mobile_recorder.py"), "--host", recorder_host,
        "--port", str(args.recorder_port),
        "--certfile", str(cert.cert_path), "--keyfile", str(cert.key_path),
    ]  # fmt: skip
    api = [
        py, str(PROJECT_ROOT / "api.py"), "--host", s.api_host, "--port", str(args.api_port),
        "--no-worker",
    ]  # fmt: skip
    worker = [py, "-m", "auscult.worker"]
    return {"analyzer": analyzer, "recorder": recorder, "api": api, "worker": worker}


def _announce(
    args: argparse.Namespace,
    lan,
    token: str,
    phone_url: str,
    analyzer_url: str,
    api_url: str,
    logs: Path,
) -> None:
    """Print the addresses and the QR code, and open the analyzer in the browser."""
    import qr_generator

    say()
    say("Auscult is running.")
    say(f"  Analyzer (this computer):  {analyzer_url}")
    lan_url = qr_generator.recorder_url(lan.ip, args.recorder_port, token)
    say(f"  Phone recording page:      {phone_url}")
    if phone_url != lan_url:
        say(f"  … on the same Wi-Fi:       {lan_url}")
    say(f"  … on this computer:        https://localhost:{args.recorder_port}/?t={token}")
    say(f"  REST API:                  {api_url}   (docs: {api_url}/docs)")
    if phone_url == lan_url:
        say(f"  LAN address {lan.ip}: {lan.reason}")
        say(
            "  Scan this with the phone's camera (phone on the same Wi-Fi). The phone warns "
            "about the self-signed certificate once: choose Advanced → Proceed / Visit."
        )
    else:
        say("  Scan this with the phone's camera (works from any network, via the tunnel).")
    say()
    say(qr_generator.qr_text(phone_url))
    say()
    say(f"  Logs: {logs}   ·   Press Ctrl-C to stop.")
    if not args.no_browser:
        try:
            webbrowser.open(analyzer_url)
        except Exception:  # no browser on this machine: the address is printed above
            pass


def _read_tunnel(child: Child, found: queue.Queue) -> None:
    """Copy cloudflared's stderr to its log and report the first public address."""
    assert child.process.stderr is not None
    reported = False
    for raw in iter(child.process.stderr.readline, b""):
        log = child._log
        if log is not None:
            try:
                log.write(raw)
                log.flush()
            except (ValueError, OSError):  # log closed while stopping
                break
        url = tunnel_url_from_line(raw.decode(errors="replace"))
        if url and not reported:
            found.put(url)
            reported = True


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------
def _parse_args(argv: list[str] | None, s: Settings) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Start the Auscult analyzer and phone recording page.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--port", type=int, default=s.analyzer_port, help="analyzer port (127.0.0.1)")
    p.add_argument("--recorder-port", type=int, default=s.recorder_port, help="phone page port")
    p.add_argument("--api-port", type=int, default=s.api_port, help="REST API port (127.0.0.1)")
    p.add_argument("--no-browser", action="store_true", help="do not open the analyzer")
    p.add_argument(
        "--tunnel", action="store_true", help="also publish the phone page with cloudflared"
    )
    p.add_argument("--lan-ip", default=s.lan_ip, help="address to put in the QR (default: detect)")
    p.add_argument("--app", type=Path, default=PROJECT_ROOT / "app.py", help="Streamlit app to run")
    p.add_argument("--startup-timeout", type=float, default=90.0, help="seconds to wait for health")
    p.add_argument(
        "--tunnel-timeout", type=float, default=30.0, help="seconds to wait for a tunnel"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    s = get_settings()
    args = _parse_args(argv, s)

    # --- the environment -------------------------------------------------------------
    missing = check_dependencies()
    if missing:
        say(f"Missing Python packages: {', '.join(missing)}.")
        say(
            f"  Install them with:  {sys.executable} -m pip install -r requirements.txt "
            "-c constraints.txt   (or run: make run)"
        )
        return 2
    app_path = args.app.resolve()
    if not app_path.is_file():
        say(f"The desktop analyzer was not found at {app_path}.")
        say("  Restore it with `git checkout app.py`, or point to it with --app PATH.")
        return 2
    if not s.metadata_path.exists():
        say(
            f"Note: no trained model in {s.models_dir} (metadata.json missing); the analyzer "
            "will say how to get one."
        )
    recorder_host = s.recorder_host
    for host, port, what, option in (
        (s.analyzer_host, args.port, "analyzer", "--port"),
        (recorder_host, args.recorder_port, "phone recording page", "--recorder-port"),
        (s.api_host, args.api_port, "REST API", "--api-port"),
    ):
        problem = port_problem(host, port, what, option)
        if problem:
            say(problem)
            return 2
    if len({args.port, args.recorder_port, args.api_port}) < 3:
        say("--port, --recorder-port and --api-port must all differ.")
        return 2

    import qr_generator
    from auscult.pairing import Pairings
    from auscult.tls import ensure_certificate
    from serving import raise_open_files_limit

    raise_open_files_limit()  # the servers inherit it: idle phones cannot exhaust them
    os.umask(0o077)  # history, logs, audio and keys: readable by this user only
    if s.metadata_path.exists():
        from auscult.registry import open_at_start

        if note := open_at_start(s):  # after an update: which model now serves
            say(note)

    s = dataclasses.replace(s, lan_ip=args.lan_ip or "")
    lan = qr_generator.lan_address(s)
    cert = ensure_certificate(s.work_dir / "tls", lan.ip)
    token = Pairings(s).new_code().token  # renewable from the desktop, expires by itself
    phone_url = qr_generator.recorder_url(lan.ip, args.recorder_port, token)
    analyzer_url = f"http://{s.analyzer_host}:{args.port}"
    api_url = f"http://{s.api_host}:{args.api_port}"
    logs = s.work_dir / "logs"

    children: list[Child] = []
    stop = threading.Event()
    stop_reason: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        stop_reason.append(signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        env = dict(os.environ)
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "AUSCULT_ANALYZER_PORT": str(args.port),
                "AUSCULT_RECORDER_PORT": str(args.recorder_port),
                "AUSCULT_API_PORT": str(args.api_port),
                "AUSCULT_LAN_IP": lan.ip,
                "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
            }
        )

        # --- tunnel first: its public address goes into the children's environment ----
        if args.tunnel:
            public = _start_tunnel(args, env, logs, children, stop)
            if public:
                phone_url = f"{public}/?t={token}"
        env.pop(TOKEN_ENV, None)  # the servers read the renewable code from the work folder
        env[URL_ENV] = phone_url

        # --- the servers and the worker ---------------------------------------------
        for name, cmd in _server_commands(args, s, app_path, recorder_host, cert).items():
            children.append(start_child(name, cmd, env, logs / f"{name}.log"))

        # --- wait for all ------------------------------------------------------------
        probe_host = "127.0.0.1" if recorder_host in ("0.0.0.0", "::", "") else recorder_host
        tls = ssl.create_default_context(cafile=str(cert.cert_path))
        worker_pid = children[-1].process.pid
        checks: dict[str, Callable[[], bool]] = {
            "analyzer": lambda: _answers(f"{analyzer_url}/_stcore/health", "ok"),
            "recorder": lambda: _answers(
                f"https://{probe_host}:{args.recorder_port}/healthz", "auscult-recorder", tls
            ),
            "api": lambda: _answers(f"{api_url}/health", '"status":"ok"'),
            "worker": lambda: _worker_alive(s, worker_pid),
        }
        say("Starting the analyzer, the phone recording page, the REST API and the worker…")
        failed = wait_healthy(children, checks, args.startup_timeout, stop)
        if failed is not None:
            return failed
        if stop.is_set():
            stop_children(children)
            say("Stopped.")
            return 0

        # --- tell the user ------------------------------------------------------------
        _announce(args, lan, token, phone_url, analyzer_url, api_url, logs)

        # --- watch ----------------------------------------------------------------------
        while not stop.wait(0.5):
            dead = [c for c in children if not c.alive]
            if dead:
                return report_dead(dead, children)
        say(f"\nStopping ({stop_reason[0] if stop_reason else 'request'})…")
        stop_children(children)
        say("Stopped.")
        return 0
    finally:
        stop_children([c for c in children if not group_gone(c)])
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
