"""The background analysis worker: every recording that arrives is analysed, whatever is open.

Phone uploads, API ``receive`` calls and files copied into the inbox folder all end as
*pending* rows in the history store. The worker registers dropped files, claims pending rows
one at a time (:meth:`auscult.store.Store.claim_next`, so several workers never analyse the
same recording) and stores each result — within a poll interval of its arrival. It runs as
its own process started by the launcher::

    python -m auscult.worker            # until SIGTERM / Ctrl-C

or as a thread inside the REST API when that runs alone. It writes a heartbeat file
(``<work_dir>/worker.json``) that the desktop reads to say whether recordings will be
analysed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from auscult.errors import AuscultError
from auscult.service import Service
from config import Settings, get_settings

__all__ = ["HEARTBEAT_FILE", "Heartbeat", "Worker", "read_heartbeat"]

log = logging.getLogger(__name__)

HEARTBEAT_FILE = "worker.json"
#: Seconds between looks at the store and the inbox folder.
POLL_S = 0.2
#: A heartbeat older than this means no worker is running.
STALE_S = 5.0
#: Seconds between looks for what a crash left unfinished (also done at start).
RECOVER_EVERY_S = 60.0


@dataclass(frozen=True)
class Heartbeat:
    """What the worker last said about itself."""

    pid: int
    started_at: float  # epoch seconds
    beat_at: float
    analysed: int  # recordings analysed since it started
    problem: str  # why recordings cannot be analysed now ("" when they can)

    def alive(self, now: float | None = None) -> bool:
        return (now or time.time()) - self.beat_at < STALE_S


def read_heartbeat(settings: Settings | None = None) -> Heartbeat | None:
    """The running worker's heartbeat, or None when none was ever written or it is unreadable."""
    path = (settings or get_settings()).work_dir / HEARTBEAT_FILE
    try:
        return Heartbeat(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


class Worker:
    """Polls the inbox and the store, analyses what waits, reports a heartbeat."""

    def __init__(self, service: Service, poll_s: float = POLL_S) -> None:
        self.service = service
        self.poll_s = poll_s
        self.analysed = 0
        self.problem = ""
        self.started_at = time.time()
        self._last_beat = 0.0

    def run_once(self) -> list[int]:
        """One round: register dropped files, analyse every waiting recording; the ids."""
        self.service.scan_inbox()
        try:
            self.service.analyzer  # noqa: B018 - load the model before claiming anything
        except AuscultError as exc:
            self.problem = str(exc)
            return []  # rows stay pending until a model is there
        self.problem = ""
        done = self.service.process_pending()
        self.analysed += len(done)
        return done

    def beat(self, force: bool = False) -> None:
        """Write the heartbeat file (at most once a second unless ``force``)."""
        now = time.time()
        if not force and now - self._last_beat < 1.0:
            return
        self._last_beat = now
        beat = Heartbeat(os.getpid(), self.started_at, now, self.analysed, self.problem)
        # Atomic (readers never see half a file) but not fsync'ed: a heartbeat is rewritten
        # every second and means nothing after a power cut.
        path = Path(self.service.settings.work_dir) / HEARTBEAT_FILE
        tmp = path.with_name(f".{HEARTBEAT_FILE}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(beat.__dict__))  # the store made the work folder
            os.replace(tmp, path)
        except OSError:  # a full disk must not stop the analyses
            log.warning("could not write the worker heartbeat", exc_info=True)

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set; one bad round is logged, never fatal."""
        log.info("analysis worker started (store %s)", self.service.store.path)
        last_recovery = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() - last_recovery > RECOVER_EVERY_S:
                    self.service.recover()  # what a crash of any process left unfinished
                    last_recovery = time.monotonic()
                for entry_id in self.run_once():
                    log.info("analysed entry %d", entry_id)
            except Exception:
                log.exception("worker round failed; trying again")
            self.beat()
            stop.wait(self.poll_s)
        log.info("analysis worker stopped after %d analyses", self.analysed)

    def start_thread(self, stop: threading.Event) -> threading.Thread:
        """Run in a daemon thread of this process (the REST API when it runs alone)."""
        self.beat(force=True)  # alive from now on, before the model has loaded
        thread = threading.Thread(target=self.run, args=(stop,), name="auscult-worker", daemon=True)
        thread.start()
        return thread


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Auscult background analysis worker.")
    p.add_argument("--poll", type=float, default=POLL_S, help="seconds between looks")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    settings = get_settings()
    Path(settings.work_dir).mkdir(parents=True, exist_ok=True)
    worker = Worker(Service(settings), args.poll)
    worker.beat(force=True)  # alive from now on, before the model has loaded
    worker.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
