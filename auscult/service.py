"""What every door does — analyse, receive, list, get, delete, export — in one UI-free place.

The desktop app, the phone page, the REST API, the analysis worker and the scripts all call
:class:`Service`; none of them talks to the store, the inbox folder or the analyzer on its
own. Nothing here imports Streamlit or a web framework. Errors are the project's family
(:mod:`auscult.errors`): each carries a message for a clinician and its HTTP status.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import utils
from auscult.analyzer import AnalysisResult, Analyzer
from auscult.batch import BatchRow, analyze_many
from auscult.clinic_data import ClinicData, LabelledRecording
from auscult.ecg.analyzer import EcgAnalysis, EcgAnalyzer
from auscult.ecg.history import EcgEntry, EcgHistory
from auscult.ecg.reading import EcgRecording, load_ecg
from auscult.errors import (
    AuscultError,
    BusyError,
    InvalidEcgError,
    InvalidRequestError,
    NotFoundError,
    StorageFullError,
    UploadTooLargeError,
)
from auscult.exams import Exam, group_exams
from auscult.inbox import (
    DISK_FULL,
    Delivery,
    audio_extension,
    clean_debris,
    deliver_recording,
    inbox_filename,
    is_disk_full,
    write_atomically,
)
from auscult.reading import DISCLAIMER, reading
from auscult.store import SITES, SOURCES, STATUSES, Entry, Store
from config import Settings, get_settings

__all__ = ["Analysed", "HistoryPage", "Service"]

log = logging.getLogger(__name__)

#: A file dropped into the inbox folder is registered once it has not changed for this long.
SETTLE_S = 0.25


@dataclass(frozen=True)
class Analysed:
    """One stored analysis: its history row, its result and (when at hand) the plot inputs."""

    entry: Entry
    result: AnalysisResult
    model_input: utils.ModelInput | None = None


@dataclass(frozen=True)
class HistoryPage:
    """A page of history, newest first, and how many rows match the filter in all."""

    entries: list[Entry]
    total: int
    limit: int
    offset: int


def _check_site(site: str | None) -> None:
    if site is not None and site not in SITES:
        raise InvalidRequestError(
            f"unknown auscultation site {site!r}; choose one of {', '.join(SITES)}"
        )


def _check_text(name: str, value: str | None, limit: int = 500) -> str | None:
    """Patient/exam ids and notes: trimmed, bounded, empty means none."""
    if value is None:
        return None
    value = value.strip()
    if len(value) > limit:
        raise InvalidRequestError(f"the {name} is {len(value)} characters; keep it under {limit}")
    return value or None


class Service:
    """The actions of Auscult on one history store and one (lazily loaded) model."""

    def __init__(
        self,
        settings: Settings | None = None,
        store: Store | None = None,
        analyzer: Analyzer | Callable[[], Analyzer] | None = None,
    ) -> None:
        """``analyzer``: a loaded one, a function that loads (or shares) one, or None to load
        ``settings``' model on first use."""
        self.settings = settings or get_settings()
        self.store = store or Store(self.settings.db_path)
        self._analyzer = analyzer if isinstance(analyzer, Analyzer) else None
        self._load = analyzer if callable(analyzer) else (lambda: Analyzer(settings=self.settings))
        self._load_lock = threading.Lock()
        self._clinic: ClinicData | None = None
        self._ecg_history: EcgHistory | None = None
        self._ecg_analyzer: EcgAnalyzer | None = None
        self._inflight_lock = threading.Lock()
        self._inflight_bytes = 0
        self._decoding = threading.BoundedSemaphore(self.settings.decode_workers)

    # --- admission: bounded memory whatever arrives at once ------------------------------
    @contextmanager
    def upload_slot(self, size: int | None = None) -> Iterator[None]:
        """Reserve ``size`` bytes (the upload limit when unknown) of the in-flight budget
        while a door reads and handles an upload.

        Raises BusyError (503, Retry-After) at once when the budget
        (``max_inflight_upload_bytes``) would be exceeded: however many phones send at once,
        the bodies held in memory stay within it.
        """
        limit = self.settings.max_upload_bytes
        reserve = limit if size is None or size <= 0 else min(size, limit)
        with self._inflight_lock:
            if self._inflight_bytes + reserve > self.settings.max_inflight_upload_bytes:
                raise BusyError(
                    "many recordings are being received at this moment; send again in a few "
                    "seconds",
                    retry_after_s=2,
                )
            self._inflight_bytes += reserve
        try:
            yield
        finally:
            with self._inflight_lock:
                self._inflight_bytes -= reserve

    @contextmanager
    def _decode_slot(self) -> Iterator[None]:
        """One of ``decode_workers`` slots for decoding and analysing (waits, then 503)."""
        if not self._decoding.acquire(timeout=self.settings.decode_wait_s):
            raise BusyError(
                "the computer is busy analysing other recordings; send again in a moment",
                retry_after_s=5,
            )
        try:
            yield
        finally:
            self._decoding.release()

    # --- the model --------------------------------------------------------------------
    @property
    def analyzer(self) -> Analyzer:
        """The analyzer, loaded on first use (raises ModelNotFoundError when it cannot be)."""
        if self._analyzer is None:
            with self._load_lock:
                if self._analyzer is None:
                    self._analyzer = self._load()
        return self._analyzer

    @property
    def model_loaded(self) -> bool:
        return self._analyzer is not None

    # --- analysing now ----------------------------------------------------------------
    def _upload_name(self, filename: str, data: bytes, source: str) -> str:
        """A server-chosen file name that keeps a sensible ending."""
        ext = Path(filename).suffix.lower()
        if ext not in utils.SUPPORTED_EXTENSIONS:
            ext = audio_extension(data)
        return inbox_filename(source, None, ext)

    def analyse_upload(
        self,
        data: bytes,
        filename: str,
        *,
        source: str = "upload",
        site: str | None = None,
        patient_id: str | None = None,
        note: str | None = None,
    ) -> Analysed:
        """Analyse encoded audio, keep it under ``uploads_dir`` and store the result.

        Raises the audio errors (nothing is saved or stored) when the bytes are not a usable
        recording. The audio is written first and removed again if the store refuses the
        row, so history never points at a missing file.
        """
        _check_site(site)
        patient_id, note = (
            _check_text("patient or exam id", patient_id, 100),
            _check_text("note", note),
        )
        if len(data) > self.settings.max_upload_bytes:
            raise UploadTooLargeError.of(len(data), self.settings.max_upload_bytes)
        analyzer = self.analyzer  # a missing model is said before waiting for a slot
        with self._decode_slot():
            started = time.perf_counter()
            analysis = analyzer.analyze_detailed(bytes(data))
            elapsed_ms = 1000 * (time.perf_counter() - started)
        path = write_atomically(
            self.settings.uploads_dir, self._upload_name(filename, data, source), bytes(data)
        )
        try:
            entry_id = self.store.record(
                source=source,
                filename=filename,
                result=analysis.result.to_dict(),
                audio_path=path,
                site=site,
                patient_id=patient_id,
                note=note,
                elapsed_ms=elapsed_ms,
            )
        except BaseException as exc:
            path.unlink(missing_ok=True)
            if is_disk_full(exc):
                raise StorageFullError(DISK_FULL) from exc
            raise
        return Analysed(self.get(entry_id), analysis.result, analysis.model_input)

    def analyse_file(self, path: Path, *, source: str = "demo") -> Analysed:
        """Analyse a file that stays where it is (a demo recording) and store the result."""
        analyzer = self.analyzer
        with self._decode_slot():
            started = time.perf_counter()
            analysis = analyzer.analyze_detailed(path)
        entry_id = self.store.record(
            source=source,
            filename=path.name,
            result=analysis.result.to_dict(),
            audio_path=path,
            elapsed_ms=1000 * (time.perf_counter() - started),
        )
        return Analysed(self.get(entry_id), analysis.result, analysis.model_input)

    # --- receiving for the worker -----------------------------------------------------
    def receive(
        self,
        data: bytes,
        *,
        source: str = "phone",
        site: str | None = None,
        client_id: str | None = None,
        patient_id: str | None = None,
    ) -> Delivery:
        """Validate a recording, put it in the inbox with a pending row; the worker analyses it.

        ``client_id`` is the sender's id for the recording: sent again (a retry after a lost
        answer), the stored entry is returned with ``duplicate=True`` instead of a second one.
        ``patient_id`` files it under that patient/exam (the one the desktop has open).
        """
        patient_id = _check_text("patient or exam id", patient_id, 100)
        with self._decode_slot():
            return deliver_recording(
                data, store=self.store, site=site, source=source, client_id=client_id,
                settings=self.settings, patient_id=patient_id,
            )  # fmt: skip

    def recover(self) -> None:
        """Settle what a crash interrupted: unfinished ``.part`` files, half-done deliveries."""
        clean_debris([Path(self.settings.inbox_dir), Path(self.settings.uploads_dir)])
        pending, removed = self.store.recover_receiving()
        if pending or removed:
            log.info(
                "after a crash: %d recording(s) queued, %d unfinished removed", pending, removed
            )

    def scan_inbox(self, settle_s: float = SETTLE_S) -> list[int]:
        """Register audio files dropped into ``inbox_dir`` by any process; return the new ids.

        Hidden files (``.part`` uploads in flight) and files changed in the last ``settle_s``
        seconds (still being copied) are left for the next scan.
        """
        folder = Path(self.settings.inbox_dir)
        if not folder.is_dir():
            return []
        now = time.time()
        candidates: list[Path] = []
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.suffix.lower() not in utils.SUPPORTED_EXTENSIONS:
                continue
            try:
                if path.is_file() and now - path.stat().st_mtime >= settle_s:
                    candidates.append(path)
            except OSError:  # removed between listing and stat
                continue
        if not candidates:  # the worker looks 5 times a second: no history query when idle
            return []
        known = self.store.known_paths()
        unknown = [p for p in candidates if str(p) not in known]
        if unknown:  # rare: compare resolved paths too (a linked inbox folder)
            resolved = {str(Path(p).resolve()) for p in known}
            unknown = [p for p in unknown if str(p.resolve()) not in resolved]
        return [
            self.store.add_pending(source="inbox", filename=path.name, audio_path=path)
            for path in unknown
        ]

    def analyse_next(self) -> int | None:
        """Claim the oldest waiting recording and analyse it; its id, or None when none waits.

        Failures are stored with their message and the audio is kept; one bad file never
        stops the queue.
        """
        entry = self.store.claim_next()
        if entry is None:
            return None
        started = time.perf_counter()

        def elapsed() -> float:
            return 1000 * (time.perf_counter() - started)

        if not entry.audio_path or not Path(entry.audio_path).is_file():
            self.store.fail(entry.id, "the audio file is missing; record again")
            return entry.id
        try:
            result = self.analyzer.analyze(entry.audio_path)
        except AuscultError as exc:
            self.store.fail(entry.id, str(exc), elapsed())
        except Exception as exc:
            log.exception("analysis of entry %d failed", entry.id)
            self.store.fail(
                entry.id, f"could not analyse this recording ({type(exc).__name__})", elapsed()
            )
        else:
            self.store.complete(entry.id, result.to_dict(), elapsed())
        return entry.id

    def process_pending(self) -> list[int]:
        """Analyse every waiting recording; the ids analysed."""
        done: list[int] = []
        while (entry_id := self.analyse_next()) is not None:
            done.append(entry_id)
        return done

    # --- many at once -----------------------------------------------------------------
    def run_batch(
        self,
        items: Sequence[tuple[str, bytes]] | Sequence[Path],
        progress: Callable[[int, int, BatchRow], None] | None = None,
    ) -> list[BatchRow]:
        """Analyse uploads (``(name, bytes)``) or files; store every row as it finishes.

        Uploaded bytes are kept under ``uploads_dir`` so history can open them again; files
        on disk stay where they are.
        """
        saved: dict[int, Path | None] = {}
        for i, item in enumerate(items):
            if isinstance(item, tuple):
                name, data = item
                saved[i] = (
                    write_atomically(
                        self.settings.uploads_dir, self._upload_name(name, data, "batch"), data
                    )
                    if data and len(data) <= self.settings.max_upload_bytes
                    else None
                )
            else:
                saved[i] = Path(item)

        stored: dict[int, int] = {}

        def on_row(done: int, total: int, row: BatchRow) -> None:
            try:
                stored[done - 1] = self.store.record(
                    source="batch",
                    filename=Path(row.path).name,
                    result=row.result.to_dict() if row.result is not None else None,
                    error=row.error or None,
                    audio_path=saved[done - 1],
                )
            except Exception:  # history is a convenience here: the CSV row still stands
                log.exception("could not store batch row %s", row.path)
            if progress is not None:
                progress(done, total, row)

        rows = analyze_many(list(items), self.analyzer, progress=on_row)
        return [dataclasses.replace(r, entry_id=stored.get(i)) for i, r in enumerate(rows)]

    # --- history ----------------------------------------------------------------------
    def get(self, entry_id: int) -> Entry:
        entry = self.store.get(entry_id)
        if entry is None:
            raise NotFoundError(f"there is no analysis #{entry_id}; it may have been deleted")
        return entry

    def history(
        self,
        *,
        label: str | None = None,
        status: str | None = None,
        source: str | None = None,
        site: str | None = None,
        patient_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        search: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> HistoryPage:
        """A filtered page of history, newest first; ``search`` finds text in the patient/
        exam id, file name or note."""
        for name, value, allowed in (
            ("source", source, SOURCES),
            ("site", site, SITES),
            ("status", status, STATUSES),
            ("label", label, ("normal", "abnormal", "unsure")),
        ):
            if value is not None and value not in allowed:
                raise InvalidRequestError(
                    f"unknown {name} {value!r}; choose one of {', '.join(allowed)}"
                )
        if not 1 <= limit <= 500 or offset < 0:
            raise InvalidRequestError("limit must be 1–500 and offset 0 or more")
        filters: dict[str, Any] = {
            "label": label,
            "status": status,
            "source": source,
            "site": site,
            "patient_id": patient_id,
            "since": _utc_text(since),
            "until": _utc_text(until),
            "search": _check_text("search", search, 100),
        }
        return HistoryPage(
            self.store.entries(**filters, limit=limit, offset=offset),
            self.store.count(**filters),
            limit,
            offset,
        )

    def analysed(self, entry: Entry, *, arrays: bool = False) -> Analysed | None:
        """The stored result of a finished row (``None`` otherwise); ``arrays`` recomputes
        the plot inputs from its audio when the file is still there."""
        if entry.status != "done" or not entry.result:
            return None
        result = AnalysisResult.from_dict(entry.result)
        mi = self.model_input(entry.audio_path) if arrays else None
        return Analysed(entry, result, mi)

    def model_input(self, audio_path: str | None) -> utils.ModelInput | None:
        """Plot inputs recomputed from an audio file, or None when it is gone or unusable."""
        if not audio_path or not Path(audio_path).is_file():
            return None
        try:
            return utils.model_input(utils.load_audio(audio_path, self.settings), self.settings)
        except AuscultError:
            return None

    def audio(self, entry_id: int) -> Path:
        """The audio file of an analysis."""
        entry = self.get(entry_id)
        if not entry.audio_path or not Path(entry.audio_path).is_file():
            raise NotFoundError(f"the audio of analysis #{entry_id} is no longer stored")
        return Path(entry.audio_path)

    def owns(self, path: Path) -> bool:
        """Whether Auscult saved this file itself (uploads, inbox) and may delete it."""
        owned = (
            Path(self.settings.uploads_dir).resolve(),
            Path(self.settings.inbox_dir).resolve(),
        )
        return path.resolve().parent in owned

    def delete(self, entry_id: int) -> None:
        """Delete a history row; audio the app owns (uploads, inbox) is deleted with it.

        Inbox audio must go too, or the next folder scan would register it again.
        """
        entry = self.get(entry_id)
        if entry.audio_path and self.owns(Path(entry.audio_path)):
            Path(entry.audio_path).unlink(missing_ok=True)
        self.store.delete(entry.id)

    def export(self, entry: Entry, reference: str | None = None) -> dict[str, Any]:
        """The downloadable record of one finished analysis: result, reading, disclaimer."""
        analysed = self.analysed(entry)
        if analysed is None:
            raise NotFoundError(f"analysis #{entry.id} has no result ({entry.status})")
        return {
            "file": entry.filename,
            "source": entry.source,
            "site": entry.site,
            "patient_id": entry.patient_id,
            "note": entry.note,
            "history_id": entry.id,
            "reference_label": reference,
            "result": analysed.result.to_dict(),
            "reading": dataclasses.asdict(reading(analysed.result)),
            "disclaimer": DISCLAIMER,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def report_pdf(self, entry_id: int) -> bytes:
        """The one-page PDF report of a finished analysis (``auscult.report``)."""
        from auscult.report import report_pdf

        entry = self.get(entry_id)
        analysed = self.analysed(entry, arrays=True)
        if analysed is None:
            raise NotFoundError(f"analysis #{entry_id} has no result yet ({entry.status})")
        why = self.explanation(analysed.result, analysed.model_input)
        return report_pdf(entry, analysed.result, analysed.model_input, self.settings, why)

    @property
    def clinic(self) -> ClinicData:
        """The clinic's labelled recordings (for retraining), opened on first use."""
        if self._clinic is None:
            with self._load_lock:
                if self._clinic is None:
                    self._clinic = ClinicData(self.settings)
        return self._clinic

    def confirm_label(
        self, entry_id: int, label: str, *, who: str, evidence: str | None = None
    ) -> LabelledRecording:
        """Keep an analysed recording with its true label (e.g. "echo confirmed abnormal")
        for retraining; the audio is copied, so deleting the analysis later loses nothing."""
        entry = self.get(entry_id)
        if not entry.audio_path or not Path(entry.audio_path).is_file():
            raise NotFoundError(
                f"the audio of analysis #{entry_id} is no longer stored, so it cannot be kept "
                "for retraining"
            )
        return self.clinic.add(
            Path(entry.audio_path).read_bytes(), entry.filename, label=label, who=who,
            site=entry.site, device=entry.source, evidence=evidence,
            patient_id=entry.patient_id, note=entry.note, source="history",
            analysis_id=entry.id,
        )  # fmt: skip

    def exams(self, patient_id: str | None = None, limit: int = 50) -> list[Exam]:
        """Exams newest first; of one patient/exam id, its exams over time (to compare)."""
        patient_id = _check_text("patient or exam id", patient_id, 100)
        entries = self.store.entries(patient_id=patient_id, limit=5000)
        return group_exams(entries)[:limit]

    def exam(self, key: str) -> Exam:
        """The exam named ``<patient id>@<YYYY-MM-DD>`` (``Exam.key``); the id alone names
        its newest exam."""
        patient_id, _, day = key.rpartition("@") if "@" in key else (key, "", "")
        for exam in self.exams(patient_id):
            if not day or exam.day == day:
                return exam
        raise NotFoundError(f"no exam {key!r}: no recording is filed under that id and day")

    def exam_report_pdf(self, key: str) -> bytes:
        """The exam's PDF: a summary page, then the page of each site's newest recording."""
        from auscult.report import Page, exam_report_pdf

        exam = self.exam(key)
        pages = []
        for entry in exam.by_site.values():
            analysed = self.analysed(entry, arrays=True)
            if analysed is not None:
                why = self.explanation(analysed.result, analysed.model_input)
                pages.append(Page(entry, analysed.result, analysed.model_input, why))
        return exam_report_pdf(exam, pages, self.settings)

    def explanation(self, result: AnalysisResult, model_input: utils.ModelInput | None) -> str:
        """One sentence on what drove the score ("" when the result has no score worth
        explaining, the audio is gone, or another model version made it)."""
        from auscult.explain import explain

        runner = self.analyzer.runner
        if model_input is None or not result.reliable or result.model_version != runner.version:
            return ""
        return explain(runner, model_input, result, self.settings).sentence(result.label)

    # --- ECG (auscult/ecg) -------------------------------------------------------------
    @property
    def ecg_history(self) -> EcgHistory:
        """Stored ECG analyses, opened on first use."""
        if self._ecg_history is None:
            with self._load_lock:
                if self._ecg_history is None:
                    self._ecg_history = EcgHistory(self.settings)
        return self._ecg_history

    @property
    def ecg_analyzer(self) -> EcgAnalyzer:
        """The ECG analyzer; its beat model loads on first use."""
        if self._ecg_analyzer is None:
            with self._load_lock:
                if self._ecg_analyzer is None:
                    self._ecg_analyzer = EcgAnalyzer(settings=self.settings)
        return self._ecg_analyzer

    def analyse_ecg(
        self,
        files: list[tuple[str, bytes]],
        *,
        source: str = "upload",
        patient_id: str | None = None,
        lead: str | None = None,
        rate_hz: float | None = None,
    ) -> tuple[EcgEntry, EcgAnalysis, EcgRecording]:
        """Read, analyse and keep an ECG (one record: a file, a WFDB pair, or a zip).

        Raises :class:`InvalidEcgError` (nothing kept) when it cannot be read."""
        patient_id = _check_text("patient or exam id", patient_id, 100)
        if not files:
            raise InvalidEcgError("no file was sent — choose an ECG file")
        size = sum(len(data) for _, data in files)
        limit = self.settings.ecg_max_upload_bytes
        if size > limit:
            raise UploadTooLargeError(
                f"the ECG files are {size / 1e6:.0f} MB; the limit is {limit / 1e6:.0f} MB"
            )
        analyzer = self.ecg_analyzer
        _ = analyzer.model  # a missing model is said before reading the file
        with self._decode_slot():
            recording = load_ecg(files, rate_hz=rate_hz, settings=self.settings)
            analysis = analyzer.analyze(recording, lead or None)
        entry = self.ecg_history.add(
            files, analysis.to_dict(), source=source, patient_id=patient_id, lead=lead,
            rate_hz=rate_hz,
        )  # fmt: skip
        return entry, analysis, recording

    def ecg_entry(self, entry_id: int) -> tuple[EcgEntry, EcgAnalysis]:
        entry = self.ecg_history.get(entry_id)
        return entry, EcgAnalysis.from_dict(entry.result)

    def ecg_recording(self, entry: EcgEntry) -> EcgRecording:
        """The stored ECG read again (to draw its strip)."""
        return load_ecg(entry.files, rate_hz=entry.rate_hz, settings=self.settings)

    def ecg_report_pdf(self, entry_id: int) -> bytes:
        from auscult.ecg.report import ecg_report_pdf

        entry, analysis = self.ecg_entry(entry_id)
        return ecg_report_pdf(entry, analysis, self.ecg_recording(entry), self.ecg_analyzer.model)

    def export_json(self, entry: Entry, reference: str | None = None) -> str:
        return json.dumps(self.export(entry, reference), indent=2)


def _utc_text(moment: datetime | None) -> str | None:
    """A filter bound in the store's format (UTC ISO); naive times are taken as UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")
