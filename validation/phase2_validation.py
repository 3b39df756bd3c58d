"""Phase 2 validation: the running servers, the pairing QR code and the phone recorder.

    python validation/phase2_validation.py            # starts `launcher.py --no-browser` itself
    python validation/phase2_validation.py \\
        --analyzer-url http://127.0.0.1:8501 \\
        --recorder-url 'https://192.168.1.20:8503/?t=TOKEN'      # servers already running

Checks: both servers answer their health checks; the analyzer listens on 127.0.0.1 only; the
phone page is served over HTTPS with a certificate for its address; the QR code decodes (with
a real QR reader, zxing-cpp) to the phone address; the page asks for the raw microphone
(echo cancellation, noise suppression, gain control off) and stops by itself; the page weighs
under 100 KB transferred; an upload without the pairing token is refused; an upload with it
lands in the inbox with a history row; a file that is not audio is refused with a human
message. Prints a check list and exits 1 when any check fails (2 when it could not start).

When it starts the launcher itself, everything goes to a temporary work folder. Against
running servers, the test upload is removed from the history and the inbox afterwards
(``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import io
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import qr_generator  # noqa: E402
from auscult.store import Store  # noqa: E402
from config import Settings, get_settings  # noqa: E402

PAGE_LIMIT_BYTES = 100_000
MIC_SETTINGS = ("echoCancellation: false", "noiseSuppression: false", "autoGainControl: false")


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


class Report:
    def __init__(self) -> None:
        self.checks: list[Check] = []

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, ok, detail))
        mark = "PASS" if ok else "FAIL"
        print(f"  [{mark}] {name}" + (f" — {detail}" if detail else ""), flush=True)
        return ok

    def run(self, name: str, fn) -> bool:
        """Run ``fn() -> (ok, detail)``; an exception is a failed check with its message."""
        try:
            ok, detail = fn()
        except Exception as exc:  # a check that crashes has failed, say why
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        return self.add(name, ok, detail)

    @property
    def failed(self) -> int:
        return sum(not c.ok for c in self.checks)


# --------------------------------------------------------------------------------------
# HTTP helpers (stdlib only: the check must not depend on what it checks)
# --------------------------------------------------------------------------------------
def _insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def http(
    url: str,
    *,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
    connect_host: str | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, raw body) — gzip is not undone, so the size is what travelled."""
    if connect_host:  # reach the server by another address (same machine), keep the path
        parts = urlsplit(url)
        url = parts._replace(netloc=f"{connect_host}:{parts.port}").geturl()
    req = urllib.request.Request(
        url, data=data, headers=headers or {}, method="POST" if data is not None else "GET"
    )
    if url.startswith("https") and context is None:
        context = _insecure()
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def _text(headers: dict[str, str], body: bytes) -> str:
    if headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    return body.decode("utf-8", errors="replace")


def heart_wav(seconds: float = 6.0, rate: int = 8000) -> bytes:
    """A heart-like 16-bit WAV: 40–60 Hz bursts (S1, S2) at 72 bpm over faint noise."""
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    phase = t % (60 / 72)
    s1 = (phase < 0.09) * np.sin(2 * np.pi * 45 * t)
    s2 = ((phase > 0.32) & (phase < 0.39)) * 0.7 * np.sin(2 * np.pi * 60 * t)
    x = 0.4 * (s1 + s2) + 0.005 * np.random.default_rng(1).standard_normal(t.size)
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def decode_qr_png(png: bytes) -> list[str]:
    import zxingcpp
    from PIL import Image

    return [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


def decode_qr_text(text: str) -> list[str]:
    """Decode a terminal QR code (as printed by the launcher) with a real QR reader."""
    from PIL import Image

    matrix = qr_generator.matrix_from_text(text)
    n_rows, n_cols = len(matrix), len(matrix[0])
    img = Image.new("L", (n_cols, n_rows), 255)
    img.putdata([0 if dark else 255 for row in matrix for dark in row])
    img = img.resize((n_cols * 8, n_rows * 8), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return decode_qr_png(buf.getvalue())


def terminal_qr(output: str) -> str:
    """The block of QR lines in the launcher's output."""
    lines = [ln for ln in output.splitlines() if ln and set(ln) <= set(" ▀▄█")]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# starting the launcher
# --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Launched:
    """`launcher.py --no-browser` on free ports in a temporary work folder."""

    def __init__(self, app: Path | None, work_dir: Path, timeout: float = 120.0) -> None:
        self.port, self.recorder_port, self.api_port = free_port(), free_port(), free_port()
        cmd = [
            sys.executable,
            str(ROOT / "launcher.py"),
            "--no-browser",
            "--port",
            str(self.port),
            "--recorder-port",
            str(self.recorder_port),
            "--api-port",
            str(self.api_port),
        ]
        if app is not None:
            cmd += ["--app", str(app)]
        env = dict(os.environ, AUSCULT_WORK_DIR=str(work_dir), PYTHONUNBUFFERED="1")
        self.work_dir = work_dir
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not any("Press Ctrl-C" in ln for ln in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                time.sleep(0.2)
                raise RuntimeError("the launcher did not start:\n" + self.output)
            time.sleep(0.1)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def phone_url(self) -> str:
        match = re.search(r"Phone recording page:\s+(\S+)", self.output)
        if not match:
            raise RuntimeError("the launcher printed no phone address")
        return match.group(1)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return -9


# --------------------------------------------------------------------------------------
# the checks
# --------------------------------------------------------------------------------------
def validate(
    analyzer_url: str,
    phone_url: str,
    settings: Settings,
    *,
    connect_host: str | None,
    cafile: Path | None,
    qr_text: str | None,
    cleanup: bool,
) -> Report:
    report = Report()
    parts = urlsplit(phone_url)
    base = f"{parts.scheme}://{parts.netloc}"
    token = parse_qs(parts.query).get("t", [""])[0]
    token_header = {"X-Auscult-Token": token}

    def analyzer_health():
        status, _, body = http(f"{analyzer_url.rstrip('/')}/_stcore/health", timeout=5)
        return status == 200 and body.strip() == b"ok", f"{analyzer_url} → {status} {body[:20]!r}"

    def analyzer_local_only():
        try:
            import psutil
        except ImportError:
            return True, "psutil not installed: not checked"
        port = urlsplit(analyzer_url).port
        try:
            listening = {
                c.laddr.ip
                for c in psutil.net_connections("tcp")
                if c.status == psutil.CONN_LISTEN and c.laddr.port == port
            }
        except psutil.AccessDenied:
            return True, "not allowed to list sockets: not checked"
        local_only = bool(listening) and listening <= {"127.0.0.1", "::1"}
        return local_only, f"listens on {sorted(listening)}"

    def recorder_health():
        status, _, body = http(f"{base}/healthz", connect_host=connect_host, timeout=5)
        return status == 200 and b"ok" in body, f"{base}/healthz → {status}"

    def recorder_tls():
        if parts.scheme != "https":
            return False, "the phone address is not https:// — phones refuse the microphone"
        if parts.hostname and parts.hostname.endswith(".trycloudflare.com"):
            return True, "served through the cloudflared tunnel (Cloudflare's certificate)"
        host = connect_host or parts.hostname
        ctx = _insecure()
        with socket.create_connection((host, parts.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=None) as tls:
                der = tls.getpeercert(binary_form=True)
        from cryptography import x509

        cert = x509.load_der_x509_certificate(der)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = {str(v) for v in san.get_values_for_type(x509.IPAddress)}
        names |= set(san.get_values_for_type(x509.DNSName))
        ok = parts.hostname in names
        detail = f"certificate names: {', '.join(sorted(names))}"
        if cafile and cafile.exists():
            same = x509.load_pem_x509_certificate(cafile.read_bytes()) == cert
            ok = ok and same
            detail += f"; {'the' if same else 'NOT the'} certificate in {cafile}"
        return ok, detail

    def qr_decodes():
        decoded = decode_qr_png(qr_generator.qr_png(phone_url))
        detail = f"PNG → {decoded}"
        ok = decoded == [phone_url]
        if qr_text is not None:
            from_terminal = decode_qr_text(qr_text)
            ok = ok and from_terminal == [phone_url]
            detail = f"terminal QR → {from_terminal}; " + detail
        return ok, detail

    page: dict[str, str] = {}
    page_bytes = [0]

    def page_fetch():
        status, headers, body = http(
            phone_url, headers={"Accept-Encoding": "gzip"}, connect_host=connect_host
        )
        page["html"] = _text(headers, body)
        page_bytes[0] = len(body)
        scripts = [
            *re.findall(r'(?:src|href)="(/static/[^"]+)"', page["html"]),
            "/static/recorder-worklet.js",
        ]
        for path in dict.fromkeys(scripts):
            s, h, b = http(
                base + path, headers={"Accept-Encoding": "gzip"}, connect_host=connect_host
            )
            if s != 200:
                return False, f"{path} → {s}"
            page[path] = _text(h, b)
            page_bytes[0] += len(b)
        return status == 200, f"{status}, {len(page) - 1} assets"

    def mic_settings():
        code = "\n".join(page.values())
        missing = [m for m in MIC_SETTINGS if m not in code]
        return not missing, "missing: " + ", ".join(missing) if missing else ", ".join(MIC_SETTINGS)

    def auto_stop():
        html, code = page.get("html", ""), "\n".join(page.values())
        lengths = [s for s in (10, 15, 30) if f'data-seconds="{s}"' in html]
        stops = "finishRecording()" in code and "rec.target" in code
        return lengths == [
            10,
            15,
            30,
        ] and stops, f"lengths {lengths} s, automatic stop {'found' if stops else 'missing'}"

    def page_size():
        return page_bytes[
            0
        ] < PAGE_LIMIT_BYTES, f"{page_bytes[0] / 1000:.1f} KB transferred (limit 100 KB)"

    upload_url = f"{base}/api/recordings?site=mitral"
    wav = heart_wav()

    def refuses_without_token():
        status, _, body = http(
            upload_url, data=wav, headers={"Content-Type": "audio/wav"}, connect_host=connect_host
        )
        return status == 403, f"{status} {json.loads(body or b'{}').get('error', '')[:60]}"

    def refuses_wrong_token():
        status, _, _ = http(
            upload_url,
            data=wav,
            headers={"X-Auscult-Token": token + "x"},
            connect_host=connect_host,
        )
        return status == 403, str(status)

    def stores_with_token():
        t0 = time.perf_counter()
        status, _, body = http(
            upload_url,
            data=wav,
            headers={**token_header, "Content-Type": "audio/wav"},
            connect_host=connect_host,
        )
        elapsed = time.perf_counter() - t0
        if status != 201:
            return False, f"{status} {body[:200]!r}"
        answer = json.loads(body)
        store = Store(settings.db_path)
        try:
            entry = store.get(answer["id"])
            ok = (
                entry is not None
                and entry.status in ("pending", "done", "error")
                and entry.source == "phone"
                and entry.audio_path is not None
                and Path(entry.audio_path).read_bytes() == wav
            )
            detail = (
                f"entry {answer['id']} ({entry.status if entry else 'missing'}) in "
                f"{settings.db_path}, stored in {elapsed * 1000:.0f} ms"
            )
            if cleanup and entry is not None:
                store.delete(entry.id)
                Path(entry.audio_path).unlink(missing_ok=True)
        finally:
            store.close()
        return ok, detail

    def refuses_non_audio():
        status, _, body = http(
            upload_url,
            data=b"%PDF-1.4 not a recording\n" * 50,
            headers=token_header,
            connect_host=connect_host,
        )
        message = json.loads(body or b"{}").get("error", "")
        return status == 415 and "audio" in message, f"{status} “{message[:70]}…”"

    print("Phase 2 validation — servers, pairing QR code, phone recorder", flush=True)
    report.run("analyzer answers its health check", analyzer_health)
    report.run("analyzer listens on 127.0.0.1 only", analyzer_local_only)
    report.run("phone page answers its health check over HTTPS", recorder_health)
    report.run("phone page certificate covers its address", recorder_tls)
    report.run("QR code decodes to the phone address", qr_decodes)
    if report.run("phone page loads with its scripts", page_fetch):
        report.run("page asks for the raw microphone (no echo/noise/gain processing)", mic_settings)
        report.run("page offers 10/15/30 s and stops by itself", auto_stop)
        report.run("page is under 100 KB transferred", page_size)
    report.run("upload without the pairing token is refused (403)", refuses_without_token)
    report.run("upload with a wrong pairing token is refused (403)", refuses_wrong_token)
    report.run("upload with the token is stored in the inbox and the history", stores_with_token)
    report.run("a file that is not audio is refused with a human message (415)", refuses_non_audio)
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--analyzer-url", help="running analyzer, e.g. http://127.0.0.1:8501")
    p.add_argument(
        "--recorder-url", help="phone address with its token, https://<ip>:<port>/?t=..."
    )
    p.add_argument(
        "--connect-host", help="reach the phone page by this address instead (e.g. 127.0.0.1)"
    )
    p.add_argument(
        "--work-dir", type=Path, help="work folder of the running servers (store, inbox)"
    )
    p.add_argument("--app", type=Path, help="Streamlit app for the launcher (default app.py)")
    p.add_argument("--keep", action="store_true", help="keep the test upload in history and inbox")
    args = p.parse_args(argv)

    settings = get_settings()
    if args.work_dir:
        settings = dataclasses.replace(settings, work_dir=args.work_dir.resolve())
    if bool(args.analyzer_url) != bool(args.recorder_url):
        p.error("give both --analyzer-url and --recorder-url, or neither (to start the launcher)")

    if args.analyzer_url:
        report = validate(
            args.analyzer_url,
            args.recorder_url,
            settings,
            connect_host=args.connect_host,
            cafile=settings.work_dir / "tls" / "cert.pem",
            qr_text=None,
            cleanup=not args.keep,
        )
    else:
        with tempfile.TemporaryDirectory(prefix="auscult-phase2-") as tmp:
            work = Path(tmp)
            print("Starting launcher.py --no-browser in a temporary work folder…", flush=True)
            try:
                launched = Launched(args.app, work)
            except RuntimeError as exc:
                print(f"  [FAIL] the launcher starts — {exc}")
                return 2
            try:
                report = validate(
                    f"http://127.0.0.1:{launched.port}",
                    launched.phone_url,
                    dataclasses.replace(settings, work_dir=work),
                    connect_host="127.0.0.1",
                    cafile=work / "tls" / "cert.pem",
                    qr_text=terminal_qr(launched.output),
                    cleanup=False,
                )
            finally:
                code = launched.stop()
            report.add("launcher stops cleanly on SIGTERM", code == 0, f"exit code {code}")
    passed = len(report.checks) - report.failed
    print(f"Result: {passed} checks passed, {report.failed} failed", flush=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
