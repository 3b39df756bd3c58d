"""Auscult settings: one frozen object, read once, overridable by ``AUSCULT_*`` variables.

Nothing else in the project reads ``os.environ`` for settings. Tests build their own
``Settings`` with :func:`dataclasses.replace` or set variables and call
``get_settings.cache_clear()``.

Examples
--------
>>> from config import get_settings
>>> get_settings().sample_rate
8000
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["ENV_PREFIX", "PROJECT_ROOT", "Settings", "get_settings"]

PROJECT_ROOT = Path(__file__).resolve().parent
ENV_PREFIX = "AUSCULT_"


@dataclass(frozen=True)
class Settings:
    """Every path, audio constant, model constant and port the project uses."""

    # --- paths -------------------------------------------------------------------------
    project_root: Path = PROJECT_ROOT
    #: PhysioNet/CinC 2016 folder (training-a … training-f with REFERENCE.csv).
    data_dir: Path = PROJECT_ROOT.parent / "shared" / "data" / "physionet2016"
    #: Runtime files written by the product (SQLite, inbox, uploads, caches).
    work_dir: Path = PROJECT_ROOT / "data"
    models_dir: Path = PROJECT_ROOT / "models"
    model_name: str = "auscult_cnn"

    # --- audio front end (the only path to model input; see utils.py) -----------------
    #: Hz of the log-mel spectrogram: ``n_fft``, ``win_length`` and ``hop_length`` count
    #: samples at this rate (64 ms FFT, 50 ms Hann window, 20 ms hop, 15.6 Hz bins).
    sample_rate: int = 8000
    #: Hz, every recording passes through this rate first: PhysioNet 2016's own, so a phone's
    #: 48 kHz audio reaches the model through the same band as the training data.
    band_rate: int = 2000
    band_low_hz: float = 25.0  # high-pass corner: removes DC, breathing rumble
    band_high_hz: float = 950.0  # low-pass corner: PhysioNet 2016 holds nothing above 1 kHz
    #: Hz of the samples the 8 kHz log-mel is computed from. Nothing above 1 kHz survives
    #: the band limit, so the same windows and bins are taken straight from the 2 kHz band
    #: signal, a quarter of the samples of an 8 kHz copy (set it to ``sample_rate`` to
    #: compute from that copy: ~0.02 dB apart on average, most of it the upsampler's roll-off
    #: near 950 Hz; see the README's front-end notes).
    log_mel_rate: int = 2000
    n_fft: int = 512  # samples (64 ms)
    win_length: int = 400  # samples (50 ms) Hann window
    hop_length: int = 160  # samples (20 ms) between frames
    n_mels: int = 32
    mel_fmin: float = 25.0
    mel_fmax: float = 950.0
    top_db: float = 80.0  # log-mel floor below the loudest bin
    #: Neighbouring mel bands the CNN reads as one (their mean; ``utils.coarse_bands``).
    #: 1 reads every band, as the committed model does; 4 was tried in session 28
    #: (models/experiments.md): the same LODO mean over two seeds, test AUC −0.014.
    band_group: int = 1
    window_s: float = 4.0  # model input length
    window_hop_s: float = 2.0  # hop between analysis windows at inference
    min_rate_hz: int = 2000
    max_rate_hz: int = 96000
    #: Shorter recordings are refused. At 2 s the rhythm check still refuses 99 % of
    #: noise-only phone recordings (more than at 3 s: a short recording needs a clearer beat)
    #: and about half of real ones, and calls the rest as well as 3 s clips (test clips:
    #: judged Se 0.96, Sp 0.79; models/experiments.md, session 25).
    min_duration_s: float = 2.0
    max_duration_s: float = 600.0  # longer recordings are refused (10 minutes)
    #: Retraining from the clinic's recordings (auscult/retrain.py): fine-tuning epochs, and
    #: a stratified subset of PhysioNet records to use (0: all; smaller for quick checks).
    retrain_epochs: int = 4
    retrain_limit: int = 0
    clip_warn_fraction: float = 0.01  # warn when ≥ 1 % of samples sit at full scale
    silence_rms: float = 1e-4  # RMS (full scale = 1) below which a recording is silent
    max_upload_bytes: int = 64 * 1024 * 1024
    #: Bytes of uploads being received at once per process (an upload beyond gets 503 +
    #: Retry-After at once; one that does not say its size counts as max_upload_bytes), and
    #: recordings decoded at once (the rest wait up to ``decode_wait_s``): a long 48 kHz
    #: recording costs ~200 MB while it is decoded.
    max_inflight_upload_bytes: int = 512 * 1024 * 1024
    decode_workers: int = 2
    decode_wait_s: float = 30.0

    #: Single-threaded LiteRT interpreters the model runner keeps: a batch of 32 windows or
    #: more (an explanation, a long recording) is split across them, one core each. One
    #: recording's few windows use one, on its own thread beside the heart-cycle reading
    #: (``auscult.analyzer``): a multi-threaded interpreter there only contended for the two
    #: cores (warm 30 s FLAC ~19 → ~16 ms here).
    inference_threads: int = 2
    #: Threads for numpy's BLAS in a process that analyses (0: the library's own choice). Its
    #: matrices here are small, and OpenBLAS's idle threads keep spinning on the core that
    #: LiteRT and the FFT need next: a warm 30 s analysis took 36–40 ms with two, 26–31 with one.
    blas_threads: int = 1

    # --- ECG module (auscult/ecg) ------------------------------------------------------
    #: MIT-BIH Arrhythmia Database folder (WFDB), for training and evaluation only.
    ecg_data_dir: Path = PROJECT_ROOT.parent / "shared" / "data" / "mitdb"
    ecg_model_name: str = "ecg_beats"
    ecg_rate: int = 360  # Hz, every ECG is resampled to this (MIT-BIH's own)
    ecg_min_rate_hz: int = 100
    ecg_max_rate_hz: int = 2000
    ecg_min_duration_s: float = 5.0
    ecg_max_duration_s: float = 24 * 3600.0
    ecg_max_upload_bytes: int = 256 * 1024 * 1024  # a 24 h two-lead record is ~130 MB

    # --- decision ----------------------------------------------------------------------
    #: Quality score (0–1) below which the analyzer says "unsure" instead of guessing.
    min_quality: float = 0.35

    # --- servers -----------------------------------------------------------------------
    analyzer_host: str = "127.0.0.1"
    analyzer_port: int = 8501
    recorder_host: str = "0.0.0.0"
    recorder_port: int = 8503
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    #: Key the REST API requires in ``X-API-Key``; required whenever it binds beyond
    #: loopback (``AUSCULT_API_KEY``). Empty: no key on 127.0.0.1.
    api_key: str = ""
    #: Analyses the API runs at once (one per core); more wait up to ``api_queue_s``, then 503.
    api_workers: int = 2
    api_queue_s: float = 2.0
    #: Connection guards of the HTTP servers (serving.py): seconds to send a request head,
    #: seconds an idle kept-alive connection stays, seconds between body chunks, and
    #: connections served at once.
    request_head_s: float = 10.0
    keep_alive_s: int = 5
    body_idle_s: float = 15.0
    max_connections: int = 4096
    #: LAN address to advertise in the QR code; empty means detect it.
    lan_ip: str = ""
    #: Phone recording page address and pairing token, handed to the analyzer by the
    #: launcher (``AUSCULT_RECORDER_URL``, ``AUSCULT_PAIRING_TOKEN``); empty when the
    #: analyzer was started on its own.
    recorder_url: str = ""
    pairing_token: str = ""
    #: Lifetime of a pairing code made by the launcher or the desktop (auscult/pairing.py).
    #: A fixed ``pairing_token`` (containers) never expires.
    pairing_ttl_s: float = 12 * 3600.0

    # --- derived paths -----------------------------------------------------------------
    @property
    def keras_path(self) -> Path:
        return self.models_dir / f"{self.model_name}.keras"

    @property
    def tflite_path(self) -> Path:
        return self.models_dir / f"{self.model_name}.tflite"

    @property
    def ecg_model_path(self) -> Path:
        return self.models_dir / f"{self.ecg_model_name}.tflite"

    @property
    def ecg_card_path(self) -> Path:
        return self.models_dir / f"{self.ecg_model_name}.json"

    @property
    def metadata_path(self) -> Path:
        return self.models_dir / "metadata.json"

    @property
    def cache_dir(self) -> Path:
        return self.work_dir / "cache"

    @property
    def inbox_dir(self) -> Path:
        return self.work_dir / "inbox"

    @property
    def uploads_dir(self) -> Path:
        return self.work_dir / "uploads"

    @property
    def db_path(self) -> Path:
        return self.work_dir / "auscult.db"

    @property
    def window_frames(self) -> int:
        """Frames per model window."""
        return round(self.window_s * self.sample_rate / self.hop_length)

    @property
    def window_hop_frames(self) -> int:
        return round(self.window_hop_s * self.sample_rate / self.hop_length)

    def preprocessing(self) -> dict[str, float | int]:
        """Every constant the front end uses, as stored in ``models/metadata.json``."""
        names = (
            "sample_rate", "band_rate", "band_low_hz", "band_high_hz", "log_mel_rate", "n_fft",
            "win_length", "hop_length", "n_mels", "mel_fmin", "mel_fmax", "top_db", "band_group",
            "window_s", "window_hop_s",
        )  # fmt: skip
        return {name: getattr(self, name) for name in names}


def _coerce(raw: str, current: object) -> object:
    """Turn an environment string into the type of the field's default."""
    if isinstance(current, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(current, int):
        return int(raw)
    if isinstance(current, float):
        return float(raw)
    if isinstance(current, Path):
        return Path(raw).expanduser().resolve()
    return raw


def settings_from_env(environ: dict[str, str] | None = None) -> Settings:
    """Build settings from defaults plus ``AUSCULT_<FIELD>`` overrides."""
    environ = dict(os.environ if environ is None else environ)
    defaults = Settings()
    overrides: dict[str, object] = {}
    for f in dataclasses.fields(Settings):
        raw = environ.get(ENV_PREFIX + f.name.upper())
        if raw is not None and raw != "":
            try:
                overrides[f.name] = _coerce(raw, getattr(defaults, f.name))
            except ValueError as exc:
                raise ValueError(
                    f"{ENV_PREFIX}{f.name.upper()}={raw!r} is not a valid "
                    f"{type(getattr(defaults, f.name)).__name__}"
                ) from exc
    return dataclasses.replace(defaults, **overrides)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return settings_from_env()
