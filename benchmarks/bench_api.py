"""REST API load test: Locust against the real server on loopback, next to the in-process ceiling.

    python benchmarks/bench_api.py [--json] [--out models/evaluation/bench_api.json]
        [--users 100] [--spawn-rate 10] [--duration 60]

1. In-process ceiling: analyses per second of the same 10 s 8 kHz WAV through
   ``Service.analyse_upload`` (decode, analyse, store) with ``api_workers`` threads — what
   the API could at best do for the analysis requests, measured in this run.
2. Starts ``api.py`` (one process, its analysis slots, no worker) in a temporary work folder,
   waits for ``/health/ready``, runs ``tests/locustfile.py`` headless (the anchor system's
   scenario: health, single analysis, batch, history, metrics) and reads Locust's CSV.
3. Prints RPS, p50/p95/p99 latency and failures, overall and per route, and RPS over the
   ceiling. Targets on 2 cores: 0 failures, p95 ≤ 500 ms, RPS ≥ 0.7 × ceiling and ≥ 110.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import Settings, get_settings  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ceiling(settings: Settings, wav: bytes, seconds: float = 10.0) -> float:
    """Analyses per second in process, ``api_workers`` threads, the same file, stored."""
    from auscult.service import Service

    service = Service(settings)
    service.analyse_upload(wav, "warm.wav")
    done = 0
    deadline = time.perf_counter() + seconds

    def loop() -> int:
        n = 0
        while time.perf_counter() < deadline:
            service.analyse_upload(wav, "bench.wav", source="api")
            n += 1
        return n

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(settings.api_workers) as pool:
        done = sum(pool.map(lambda _: loop(), range(settings.api_workers)))
    return done / (time.perf_counter() - started)


def wait_ready(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the API did not become ready at {url} within {timeout:.0f} s")


def read_stats(prefix: Path) -> dict[str, dict[str, float]]:
    """Locust's ``<prefix>_stats.csv`` as {route: figures}; "Aggregated" is the total."""
    rows: dict[str, dict[str, float]] = {}
    with open(f"{prefix}_stats.csv", newline="") as f:
        for row in csv.DictReader(f):
            rows[row["Name"]] = {
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "rps": round(float(row["Requests/s"]), 1),
                "p50_ms": float(row["50%"]),
                "p95_ms": float(row["95%"]),
                "p99_ms": float(row["99%"]),
            }
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--spawn-rate", type=float, default=10.0)
    p.add_argument("--duration", type=int, default=60, help="seconds of load")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="auscult-bench-api-"))
    env = dict(os.environ, AUSCULT_WORK_DIR=str(work), PYTHONUNBUFFERED="1")
    env.pop("AUSCULT_API_KEY", None)
    settings = Settings(**{**get_settings().__dict__, "work_dir": work})
    from auscult.synthetic import heart_sound_wav

    wav = heart_sound_wav(10.0, 8000)  # the file tests/locustfile.py sends

    server = None
    try:
        print(f"in-process ceiling ({settings.api_workers} threads, 10 s)…", file=sys.stderr)
        top = ceiling(settings, wav)
        shutil.rmtree(work / "uploads", ignore_errors=True)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "api.py"), "--port", str(port), "--no-worker"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(work / "api.log", "wb"),
        )
        wait_ready(f"http://127.0.0.1:{port}/health/ready")
        prefix = work / "locust"
        print(
            f"locust: {args.users} users, spawn {args.spawn_rate:g}/s, {args.duration} s…",
            file=sys.stderr,
        )
        subprocess.run(
            [
                sys.executable, "-m", "locust", "-f", str(ROOT / "tests" / "locustfile.py"),
                "--headless", "-u", str(args.users), "-r", str(args.spawn_rate),
                "-t", f"{args.duration}s", "--host", f"http://127.0.0.1:{port}",
                "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING",
            ],
            cwd=ROOT,
            env={**env, "PYTHONPATH": str(ROOT)},
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        stats = read_stats(prefix)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)

    total = stats.pop("Aggregated")
    result = {
        "users": args.users,
        "spawn_rate": args.spawn_rate,
        "duration_s": args.duration,
        "cores": os.cpu_count(),
        "rps": total["rps"],
        "p50_ms": total["p50_ms"],
        "p95_ms": total["p95_ms"],
        "p99_ms": total["p99_ms"],
        "requests": total["requests"],
        "failures": total["failures"],
        "in_process_analyses_per_s": round(top, 1),
        "rps_over_ceiling": round(total["rps"] / top, 2),
        "analysis_rps": stats.get("POST /v1/analyses", {}).get("rps"),
        "routes": stats,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        heads = ("req", "fail", "RPS", "p50", "p95", "p99")
        print(f"{'route':32s} " + " ".join(f"{h:>6s}" for h in heads))
        for name, r in [*stats.items(), ("all", total)]:
            print(
                f"{name:32s} {r['requests']:6d} {r['failures']:5d} {r['rps']:7.1f} "
                f"{r['p50_ms']:6.0f} {r['p95_ms']:6.0f} {r['p99_ms']:6.0f}"
            )
        print(
            f"in-process ceiling {top:.1f} analyses/s; RPS / ceiling = {result['rps_over_ceiling']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
