"""Model registry: every model version the clinic has had, one active, switched atomically.

Layout under ``<work_dir>/models`` (runtime data, never in git)::

    versions/<version>/auscult_cnn.tflite   the LiteRT model
    versions/<version>/metadata.json        its model card (data, metrics, calibration,
                                            parent version, date)
    active.json                             {"version": ..., "since": ..., "by": ..., "why": ...}
    log.jsonl                               every promotion and rollback, one JSON per line

The committed model (``models/`` in git) is the first version: it is copied in when the
registry is first opened, and it serves whenever the registry is empty or unreadable. A
pointer set at setup or by an upgrade means "the model this release ships": when an update
brings a new committed model, that model serves (and is registered and promoted, logged as
an upgrade, the next time the registry is opened), while a version the clinic promoted
itself stays. A version trained with other front-end constants than this release's is never
served: the committed model serves instead, and promoting one is refused.

Crash safety, by construction:

- a version is written into a hidden ``.incoming-*`` folder, checked (the card parses, the
  model file matches the card's sha256 and loads in LiteRT) and only then renamed into
  ``versions/`` — one atomic rename, so ``versions/`` never holds half a model; leftovers of
  a killed registration are removed the next time the registry opens;
- the active pointer is replaced with ``os.replace`` after an fsync: a reader sees the old
  version or the new one, never a mix, whatever moment a process is killed at;
- versions are never modified or deleted once registered, so rolling back is a pointer
  switch too.

Readers (the analyzer in the app, the worker and the API) compare the pointer's
``(mtime, size, inode)`` before each analysis and load the new version when it changed: a
promotion is visible everywhere within one analysis, without a restart.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from auscult.errors import AuscultError, ModelNotFoundError, StorageFullError
from auscult.inbox import is_disk_full, write_atomically
from auscult.model_card import ModelCard, load_card
from config import Settings, get_settings

__all__ = ["ActiveModel", "Registry", "Version", "open_at_start"]

log = logging.getLogger(__name__)

_INCOMING = ".incoming-"
#: Who set a pointer that means "the committed model of this release", not a clinic's choice.
_SHIPPED = frozenset({"setup", "upgrade"})


@dataclass(frozen=True)
class Version:
    """One registered model."""

    name: str
    folder: Path
    card: ModelCard

    @property
    def tflite_path(self) -> Path:
        return self.folder / next(iter(n for n in self.card.files if n.endswith(".tflite")))

    @property
    def metadata_path(self) -> Path:
        return self.folder / "metadata.json"


@dataclass(frozen=True)
class ActiveModel:
    """Where the model to serve lives now, and the pointer state it was read from."""

    version: str
    tflite_path: Path
    metadata_path: Path
    stamp: tuple[int, int, int]  # (mtime_ns, size, inode) of active.json; zeros: committed


def _json(data: dict) -> bytes:
    return (json.dumps(data, indent=2) + "\n").encode()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Registry:
    """The versions under ``<work_dir>/models`` and the pointer to the active one."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.root = Path(self.settings.work_dir) / "models"
        self.versions_dir = self.root / "versions"
        self.pointer = self.root / "active.json"
        self.log_path = self.root / "log.jsonl"

    # ------------------------------------------------------------------ reading
    def stamp(self) -> tuple[int, int, int]:
        """(mtime_ns, size, inode) of the pointer, zeros when there is none: cheap to poll."""
        try:
            st = self.pointer.stat()
        except OSError:
            return (0, 0, 0)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def versions(self) -> list[Version]:
        """Every registered version, oldest first (by the card's training date, then name)."""
        found = []
        for folder in sorted(self.versions_dir.glob("*")) if self.versions_dir.is_dir() else []:
            if folder.name.startswith(".") or not (folder / "metadata.json").is_file():
                continue
            try:
                card = load_card(self.settings, folder / "metadata.json")
            except AuscultError:
                continue  # unreadable: never served, listed nowhere
            found.append(Version(folder.name, folder, card))
        return sorted(found, key=lambda v: (v.card.training.date, v.name))

    def get(self, name: str) -> Version:
        for version in self.versions():
            if version.name == name:
                return version
        raise AuscultError(f"no model version {name!r} in the registry")

    def _pointer(self) -> dict:
        """The active pointer's event (``{}`` when there is none or it cannot be read)."""
        try:
            event = json.loads(self.pointer.read_text())
        except (OSError, ValueError):
            return {}
        return event if isinstance(event, dict) and "version" in event else {}

    def active_name(self) -> str | None:
        version = self._pointer().get("version")
        return None if version is None else str(version)

    def _not_servable(self, card: ModelCard, pointer: dict) -> str:
        """Why the pointer's version must not serve in this release ('' when it may)."""
        s = self.settings
        difference = card.preprocessing_difference(s)
        if difference:
            return f"it was trained with another front end ({difference})"
        if pointer.get("by") in _SHIPPED:
            committed = load_card(s).version
            if card.version != committed:
                return f"it is an earlier release's committed model ({committed} is this one's)"
        return ""

    def active(self) -> ActiveModel:
        """The model to serve: the pointer's version; the committed model without one, for a
        broken one, or when :meth:`_not_servable` says why not."""
        stamp = self.stamp()
        pointer = self._pointer()
        name = str(pointer.get("version", ""))
        folder = self.versions_dir / name if name else None
        if folder is not None and (folder / "metadata.json").is_file():
            try:
                version = Version(name, folder, load_card(self.settings, folder / "metadata.json"))
                why = self._not_servable(version.card, pointer)
                if not why:
                    return ActiveModel(name, version.tflite_path, version.metadata_path, stamp)
                log.warning("serving the committed model, not version %s: %s", name, why)
            except (AuscultError, StopIteration):
                pass  # a broken pointer target: serve the committed model
        s = self.settings
        return ActiveModel("committed", s.tflite_path, s.metadata_path, stamp)

    def history(self) -> list[dict]:
        """Promotions and rollbacks, oldest first."""
        if not self.log_path.is_file():
            return []
        events = []
        for line in self.log_path.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue  # a line a crash cut short
        return events

    # ------------------------------------------------------------------ writing
    def ensure(self) -> None:
        """Create the registry with the committed model as its first, active version; after
        an update, register a new committed model and promote it where the pointer served
        the earlier release's (or a version this front end cannot serve); remove what a
        killed registration left behind."""
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.versions_dir.glob(f"{_INCOMING}*"):
            shutil.rmtree(leftover, ignore_errors=True)
        pointer = self._pointer()
        first = not pointer and not any(self.versions())
        if not first and self.active().version != "committed":
            try:  # serving a version this release may serve: offer the committed one beside it
                self._committed_version()
            except AuscultError as exc:
                log.warning("the committed model was not registered: %s", exc)
            return
        version = self._committed_version()
        if first:
            self.promote(version.name, by="setup", why="the committed model is the first version")
        else:
            replaced = pointer.get("version") or "no readable active version"
            why = f"this release's committed model, in place of {replaced}"
            self.promote(version.name, by="upgrade", why=why)

    def _committed_version(self) -> Version:
        """The committed model (``models/``) as a registered version, registering it if new."""
        s = self.settings
        if not s.tflite_path.is_file():
            raise ModelNotFoundError(
                f"model file not found at {s.tflite_path}; restore models/ from git or retrain"
            )
        card = load_card(s)
        try:
            return self.get(card.version)
        except AuscultError:  # not registered yet
            return self.register(s.tflite_path, card.to_dict())

    def register(self, tflite_path: Path, card: dict) -> Version:
        """Add a model as a candidate version (not served until promoted).

        ``card`` is the model card as a dict; its ``files`` must hold the model file's sha256.
        Raises ``AuscultError`` for a corrupt or mismatched model (nothing is kept) and
        ``StorageFullError`` when the disk is full.
        """
        from auscult.runner import ModelRunner, sha256_of

        name = str(card.get("version") or datetime.now(UTC).strftime("%Y.%m.%d-%H%M%S"))
        if (self.versions_dir / name).exists():
            raise AuscultError(f"model version {name} is registered already")
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        incoming = Path(tempfile.mkdtemp(dir=self.versions_dir, prefix=_INCOMING))
        try:
            target = incoming / Path(tflite_path).name
            shutil.copyfile(tflite_path, target)
            for other in card.get("files", {}):  # the Keras weights beside it, for fine-tuning
                sibling = Path(tflite_path).with_name(other)
                if other != target.name and sibling.is_file():
                    shutil.copyfile(sibling, incoming / other)
            write_atomically(incoming, "metadata.json", _json(card))
            parsed = load_card(self.settings, incoming / "metadata.json")
            for file_name, expected in parsed.files.items():
                copied = incoming / file_name
                if file_name == target.name or copied.is_file():
                    if not copied.is_file() or sha256_of(copied) != expected.sha256:
                        raise AuscultError(
                            f"the candidate model {name} does not match the sha256 in its "
                            f"card ({file_name}); it is corrupt or incomplete and was not "
                            "registered"
                        )
            try:
                s = self.settings
                probe = np.zeros((1, s.n_mels, s.window_frames), dtype=np.float32)
                ModelRunner(target, parsed.threshold, parsed).predict(probe)
            except Exception as exc:  # LiteRT refuses the file
                raise AuscultError(
                    f"the candidate model {name} does not load ({exc}); it was not registered"
                ) from exc
            os.replace(incoming, self.versions_dir / name)
        except BaseException as exc:
            shutil.rmtree(incoming, ignore_errors=True)
            if is_disk_full(exc):
                raise StorageFullError(
                    "the disk is full: the new model version was not registered; free space "
                    "and register it again"
                ) from exc
            raise
        return self.get(name)

    def promote(self, name: str, *, by: str = "", why: str = "") -> None:
        """Serve version ``name`` from now on: one atomic pointer switch, logged."""
        difference = self.get(name).card.preprocessing_difference(self.settings)
        if difference:
            raise AuscultError(
                f"model version {name} was trained with another front end ({difference}); "
                "this release cannot serve it — retrain it from the active model instead"
            )
        previous = self.active_name()
        event = {"version": name, "previous": previous, "since": _now(), "by": by, "why": why}
        write_atomically(self.root, self.pointer.name, _json(event))
        with open(self.log_path, "a") as f:
            f.write(json.dumps(event) + "\n")

    def rollback(self, name: str, *, by: str = "") -> None:
        """Serve an earlier version again (a pointer switch like any promotion)."""
        self.promote(name, by=by, why=f"rollback from {self.active_name()}")


def open_at_start(settings: Settings | None = None) -> str:
    """Open the registry as the product starts, so that after an update this release's
    committed model is registered and serves; what to tell the user ('' when nothing
    changed)."""
    registry = Registry(settings)
    before = registry.active_name()
    try:
        registry.ensure()
    except AuscultError as exc:
        return f"Note: the model registry could not be opened ({exc}); the committed model serves."
    after = registry.active_name()
    if before is not None and after != before:
        return f"Model {after}, this release's, now serves in place of {before}."
    return ""
