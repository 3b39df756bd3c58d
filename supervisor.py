"""The launcher's child processes: each in its own process group, logged, watched, stopped.

A child gets SIGTERM from the kernel if the launcher itself is killed (Linux), so no server
outlives it; ``stop_children`` asks every group to stop and kills what is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from config import PROJECT_ROOT

__all__ = [
    "Child",
    "group_gone",
    "report_dead",
    "say",
    "start_child",
    "stop_children",
    "wait_healthy",
]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child after fork
    """Linux: the child gets SIGTERM if the launcher itself is killed (no orphans)."""
    _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


_LIBC = None
if sys.platform.startswith("linux"):
    try:
        import ctypes

        _LIBC = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover
        _LIBC = None


@dataclass
class Child:
    """A server the launcher started, in its own process group."""

    name: str
    process: subprocess.Popen
    log_path: Path
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join("    " + line for line in text.splitlines()[-lines:])


def start_child(
    name: str, cmd: list[str], env: dict[str, str], log_path: Path, *, stderr_pipe: bool = False
) -> Child:
    """Start ``cmd`` in a new process group with output to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "wb")
    kwargs: dict = {}
    if os.name == "posix":
        kwargs["start_new_session"] = True
        if _LIBC is not None:
            kwargs["preexec_fn"] = _die_with_parent
    else:  # pragma: no cover - Windows
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
    process = subprocess.Popen(
        cmd,
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.PIPE if stderr_pipe else subprocess.STDOUT,
        **kwargs,
    )
    return Child(name, process, log_path, log)


def _signal_group(child: Child, sig: int) -> None:
    try:
        if os.name == "posix":
            os.killpg(child.process.pid, sig)
        elif sig == signal.SIGTERM:  # pragma: no cover - Windows
            child.process.terminate()
        else:  # pragma: no cover
            child.process.kill()
    except (ProcessLookupError, PermissionError):
        pass


def group_gone(child: Child) -> bool:
    if child.process.poll() is None:
        return False
    if os.name != "posix":  # pragma: no cover
        return True
    try:
        os.killpg(child.process.pid, 0)
    except (ProcessLookupError, PermissionError):
        return True
    return False


def stop_children(children: list[Child], timeout: float = 6.0) -> None:
    """SIGTERM every process group, then SIGKILL what is left after ``timeout`` seconds."""
    for child in children:
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(group_gone(c) for c in children):
        time.sleep(0.05)
    for child in children:
        if not group_gone(child):
            _signal_group(child, signal.SIGKILL)
            try:
                child.process.wait(timeout=3)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass
        if child._log is not None:
            child._log.close()
            child._log = None


def say(message: str = "") -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------


def wait_healthy(
    children: list[Child],
    checks: dict[str, Callable[[], bool]],
    timeout: float,
    stop: threading.Event,
) -> int | None:
    """Wait until every check passes; an exit code when a child dies or time runs out."""
    healthy: set[str] = set()
    deadline = time.monotonic() + timeout
    while healthy != set(checks) and not stop.is_set():
        dead = [c for c in children if not c.alive]
        if dead:
            return report_dead(dead, children)
        if time.monotonic() > deadline:
            late = set(checks) - healthy
            say(f"Timed out after {timeout:.0f} s waiting for: {', '.join(sorted(late))}.")
            for c in children:
                if c.name in late:
                    say(f"  end of {c.log_path}:\n{c.log_tail()}")
            stop_children(children)
            return 1
        for name, check in checks.items():
            if name not in healthy and check():
                healthy.add(name)
        if healthy != set(checks):
            stop.wait(0.25)
    return None


def report_dead(dead: list[Child], children: list[Child]) -> int:
    for child in dead:
        say(f"The {child.name} stopped unexpectedly (exit code {child.process.returncode}).")
        tail = child.log_tail()
        if tail:
            say(f"  End of {child.log_path}:\n{tail}")
    say("Stopping the rest.")
    stop_children(children)
    return 1
