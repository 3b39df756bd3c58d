"""LiteRT model runner: window features in, per-window probabilities out, no TensorFlow.

The runner loads the registry's active version (``auscult.registry``; the committed model
in ``models/`` until another is promoted), checks that its file matches its model card and
that it was trained with the same front-end constants as ``config.py``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from auscult.calibration import BorderlineBand, Calibration
from auscult.cycle_features import CycleModel
from auscult.errors import AuscultError, ModelNotFoundError
from auscult.model_card import ModelCard, load_card
from config import Settings, get_settings

__all__ = ["ModelRunner", "sha256_of"]

log = logging.getLogger(__name__)

#: Windows per interpreter call (a 2-minute recording is one call).
MAX_BATCH = 64


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_preprocessing(card: ModelCard, settings: Settings) -> None:
    """Refuse a model trained with other front-end constants: its input would be wrong."""
    trained = card.preprocessing
    current = settings.preprocessing()
    differing = {k: (trained.get(k), v) for k, v in current.items() if trained.get(k) != v}
    if differing:
        detail = ", ".join(f"{k}: model {a!r} vs config {b!r}" for k, (a, b) in differing.items())
        raise AuscultError(
            f"the model was trained with different preprocessing ({detail}); "
            "retrain it or restore config.py"
        )


@dataclass
class ModelRunner:
    """Runs the committed ``.tflite`` model with LiteRT; thread-safe, loaded once per process."""

    path: Path
    threshold: float  # on the calibrated probability
    card: ModelCard
    threads: int = 1
    calibration: Calibration = field(default_factory=Calibration)
    band: BorderlineBand | None = None  # None: no borderline band (an empty one at threshold)
    cycle_model: CycleModel | None = None  # blended with the CNN's score (see analyzer)
    cycle_weight: float = 0.0
    #: The registry pointer's state this runner was loaded from (see auscult.registry).
    stamp: tuple[int, int, int] = (0, 0, 0)

    def __post_init__(self) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(self.path), num_threads=self.threads)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = 0
        self._lock = threading.Lock()
        if self.band is None:
            self.band = BorderlineBand(self.threshold, self.threshold, 0.0)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, verify: bool = True) -> ModelRunner:
        """Load the committed model named in ``config.py`` and its metadata."""
        from auscult.registry import Registry

        s = settings or get_settings()
        active = Registry(s).active()
        card = load_card(s, active.metadata_path)
        path = active.tflite_path
        if not path.exists():
            raise ModelNotFoundError(
                f"model file not found at {path}; restore models/ from git or retrain"
            )
        if verify:
            expected = card.files.get(path.name)
            if expected is not None and sha256_of(path) != expected.sha256:
                raise ModelNotFoundError(
                    f"{path.name} does not match the sha256 in metadata.json; restore it from git"
                )
        check_preprocessing(card, s)
        cycle_model, cycle_weight = card.cycle_blend
        return cls(
            path=path,
            threshold=card.threshold,
            card=card,
            threads=s.inference_threads,
            calibration=card.calibration_map,
            band=card.band,
            cycle_model=cycle_model,
            cycle_weight=cycle_weight,
            stamp=active.stamp,
        )

    @property
    def version(self) -> str:
        return self.card.version

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Raw model score per window, shape ``(n,)``, for windows ``(n, n_mels, frames)``.

        The network's sigmoid output, before calibration (see :attr:`calibration`).
        """
        x = np.asarray(windows, dtype=np.float32)[..., None]
        if len(x) <= MAX_BATCH:
            return self._invoke(x)
        # A 10-minute recording has ~300 windows: at once, the first layer's activations
        # alone would take ~120 MB. In fixed batches (the last one padded) memory stays
        # small and the interpreter is not resized for every length.
        n = len(x)
        padded = np.concatenate([x, np.zeros((-n % MAX_BATCH, *x.shape[1:]), np.float32)])
        out = [self._invoke(padded[i : i + MAX_BATCH]) for i in range(0, len(padded), MAX_BATCH)]
        return np.concatenate(out)[:n]

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            if x.shape[0] != self._batch:
                self._interpreter.resize_tensor_input(self._input["index"], list(x.shape))
                self._interpreter.allocate_tensors()
                self._batch = x.shape[0]
            self._interpreter.set_tensor(self._input["index"], x)
            self._interpreter.invoke()
            out = self._interpreter.get_tensor(self._output["index"])
        return np.asarray(out, dtype=np.float64).reshape(-1)
