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

from auscult.background import Background
from auscult.calibration import BorderlineBand, Calibration
from auscult.cycle_features import CycleModel
from auscult.errors import AuscultError, ModelNotFoundError
from auscult.model_card import ModelCard, load_card
from config import Settings, get_settings

__all__ = ["ModelRunner", "sha256_of"]

log = logging.getLogger(__name__)

#: Most windows per interpreter call (a 2-minute recording's 60 windows are one call).
MAX_BATCH = 64
#: Batches of at least this many windows (an explanation's masked copies, a long recording)
#: are split across the runner's interpreters, one core each; smaller ones use one.
SPLIT_MIN_WINDOWS = 32


class _Interpreter:
    """One single-threaded LiteRT interpreter and the lock that keeps it to one call."""

    def __init__(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=1)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = 0
        self.lock = threading.Lock()

    def run(self, batches: list[np.ndarray]) -> np.ndarray:
        """Scores of each batch of ``(n, n_mels, frames, 1)`` windows, one after another."""
        return np.concatenate([self._invoke(b) for b in batches])

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        with self.lock:
            if x.shape[0] != self.batch:
                self.interpreter.resize_tensor_input(self.input["index"], list(x.shape))
                self.interpreter.allocate_tensors()
                self.batch = x.shape[0]
            self.interpreter.set_tensor(self.input["index"], x)
            self.interpreter.invoke()
            out = self.interpreter.get_tensor(self.output["index"])
        return np.asarray(out, dtype=np.float64).reshape(-1)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_preprocessing(card: ModelCard, settings: Settings) -> None:
    """Refuse a model trained with other front-end constants: its input would be wrong."""
    detail = card.preprocessing_difference(settings)
    if detail:
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
    threads: int = 1  # single-threaded interpreters (see predict)
    calibration: Calibration = field(default_factory=Calibration)
    band: BorderlineBand | None = None  # None: no borderline band (an empty one at threshold)
    cycle_model: CycleModel | None = None  # blended with the CNN's score (see analyzer)
    cycle_weight: float = 0.0
    cnn_limits: tuple[float, float] | None = None  # the CNN's logit range in the blend
    #: The registry pointer's state this runner was loaded from (see auscult.registry).
    stamp: tuple[int, int, int] = (0, 0, 0)

    def __post_init__(self) -> None:
        self._interpreters = [_Interpreter(self.path) for _ in range(max(1, self.threads))]
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
        return cls.of_card(path, card, threads=s.inference_threads, stamp=active.stamp)

    @classmethod
    def of_card(
        cls,
        path: Path,
        card: ModelCard,
        *,
        threads: int = 1,
        stamp: tuple[int, int, int] = (0, 0, 0),
    ) -> ModelRunner:
        """A runner of the ``.tflite`` at ``path`` with everything its card decides: the
        threshold, calibration, borderline band and the blend with the heart-cycle model."""
        cycle_model, cycle_weight = card.cycle_blend
        return cls(
            path=path,
            threshold=card.threshold,
            card=card,
            threads=threads,
            calibration=card.calibration_map,
            band=card.band,
            cycle_model=cycle_model,
            cycle_weight=cycle_weight,
            cnn_limits=card.cnn_limits,
            stamp=stamp,
        )

    @property
    def version(self) -> str:
        return self.card.version

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Raw model score per window, shape ``(n,)``, for windows ``(n, n_mels, frames)``.

        The network's sigmoid output, before calibration (see :attr:`calibration`). A large
        batch is split across the interpreters, which run at once (LiteRT lets go of the
        GIL); a small one goes to an idle interpreter, so concurrent analyses do not queue.
        """
        x = np.asarray(windows, dtype=np.float32)[..., None]
        n = len(x)
        parts = len(self._interpreters) if n >= SPLIT_MIN_WINDOWS else 1
        # Equal calls of at most MAX_BATCH windows, the same number for every interpreter: a
        # 10-minute recording's first-layer activations would otherwise take ~120 MB at
        # once, and equal sizes keep the interpreters from being resized call after call.
        calls = -(-max(n, 1) // MAX_BATCH)
        calls = -(-calls // parts) * parts
        size = -(-n // calls)
        if calls * size > n:  # the last call is padded
            x = np.concatenate([x, np.zeros((calls * size - n, *x.shape[1:]), np.float32)])
        batches = [x[i * size : (i + 1) * size] for i in range(calls)]
        if parts == 1:
            return self._idle(size).run(batches)[:n]
        per = calls // parts
        rest = [
            Background(self._interpreters[p].run, batches[p * per : (p + 1) * per])
            for p in range(1, parts)
        ]
        first = self._interpreters[0].run(batches[:per])
        return np.concatenate([first, *(job.result() for job in rest)])[:n]

    def _idle(self, size: int) -> _Interpreter:
        """An interpreter no other thread is using right now, preferably one already sized
        for ``size`` windows (resizing re-plans it); the first when all are busy."""
        idle = [i for i in self._interpreters if not i.lock.locked()]
        sized = [i for i in idle if i.batch == size]
        return (sized or idle or self._interpreters)[0]
