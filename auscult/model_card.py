"""The model card: one typed record of ``models/metadata.json``, one writer, every reader.

Training writes it (:func:`write_card`), the runner, the desktop's Model page, the REST API,
the evaluation scripts and the phase-1 check read it (:func:`load_card`). A card missing a
required field is refused with a message instead of failing later on a ``KeyError``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auscult.calibration import BorderlineBand, Calibration
from auscult.cycle_features import CycleModel
from auscult.errors import ModelNotFoundError
from auscult.inbox import write_atomically
from config import Settings, get_settings

__all__ = [
    "FileRecord",
    "Lodo",
    "Metrics",
    "ModelCard",
    "Training",
    "cycle_section",
    "load_card",
    "write_card",
]

#: Front-end constants added after models were already trained, with the value those
#: models were trained with (their cards do not name it).
PREPROCESSING_BEFORE_IT_WAS_STORED: dict[str, int] = {"band_group": 1}


@dataclass(frozen=True)
class FileRecord:
    """A model file the card vouches for."""

    bytes: int
    sha256: str


@dataclass(frozen=True)
class Lodo:
    """Leave-one-database-out results of the recipe (they judge the recipe, not one model)."""

    folds: dict[str, dict[str, Any]] = field(default_factory=dict)  # database → metrics
    mean_macc: float | None = None
    mean_auc: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    how: str = ""  # how the folds were produced, when not by one run of the training script


@dataclass(frozen=True)
class Metrics:
    """Record-level metrics (``metrics.binary_metrics`` dictionaries) of the committed model."""

    validation: dict[str, Any] = field(default_factory=dict)
    test: dict[str, Any] = field(default_factory=dict)
    test_with_borderline_unsure: dict[str, Any] = field(default_factory=dict)
    test_per_database: dict[str, dict[str, Any]] = field(default_factory=dict)
    lodo: Lodo = field(default_factory=Lodo)


@dataclass(frozen=True)
class Training:
    """How and on what the model was trained."""

    data: str = ""
    records: dict[str, int] = field(default_factory=dict)  # train / validation / test
    split: dict[str, Any] = field(default_factory=dict)  # fractions, seed, by
    epochs_run: int = 0
    best_epoch: int = 0
    seconds: float = 0.0
    device: str = ""
    machine: str = ""
    date: str = ""
    history: dict[str, list[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelCard:
    """Everything known about the committed model; ``models/metadata.json`` is its JSON form."""

    version: str
    task: str
    preprocessing: dict[str, Any]  # config.Settings.preprocessing() at training time
    threshold: float  # on the calibrated probability
    threshold_rule: str
    calibration: dict[str, Any]  # Calibration.as_dict() plus fitted_on, ece, reliability
    borderline: dict[str, Any]  # BorderlineBand.as_dict() plus the rule
    aggregation: str
    metrics: Metrics
    training: Training
    params: dict[str, Any]  # training.TrainConfig as a dict
    files: dict[str, FileRecord]
    #: CycleModel.as_dict() plus "weight", its share of the blended logit, and "cnn_limits",
    #: the range the CNN's logit is held to in the blend (empty: CNN only).
    cycle_model: dict[str, Any] = field(default_factory=dict)
    parent: str = ""  # the version this one was fine-tuned from (empty: trained afresh)

    @property
    def calibration_map(self) -> Calibration:
        return Calibration.from_dict(self.calibration)

    @property
    def cycle_blend(self) -> tuple[CycleModel | None, float]:
        """The heart-cycle model and its weight in the blend; (None, 0.0) for a CNN alone."""
        if not self.cycle_model or not self.cycle_model.get("weight"):
            return None, 0.0
        return CycleModel.from_dict(self.cycle_model), float(self.cycle_model["weight"])

    @property
    def cnn_limits(self) -> tuple[float, float] | None:
        """The CNN's logit range in the blend; None leaves it free (CNN alone, or a card from
        before the limits were kept)."""
        limits = self.cycle_model.get("cnn_limits") if self.cycle_model.get("weight") else None
        return (float(limits[0]), float(limits[1])) if limits else None

    @property
    def band(self) -> BorderlineBand:
        return BorderlineBand.from_dict(self.borderline, self.threshold)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        """Build a card from parsed JSON; ``ValueError`` names what is missing."""
        required = [f.name for f in dataclasses.fields(cls) if f.name not in _OPTIONAL]
        missing = [name for name in required if name not in data]
        if missing:
            raise ValueError(f"metadata.json lacks {', '.join(missing)}")
        metrics = dict(data.get("metrics") or {})
        lodo = metrics.pop("lodo", None) or {}
        known = {f.name for f in dataclasses.fields(Metrics)}
        return cls(
            version=str(data["version"]),
            task=str(data["task"]),
            preprocessing=dict(data["preprocessing"]),
            threshold=float(data["threshold"]),
            threshold_rule=str(data.get("threshold_rule", "")),
            calibration=dict(data.get("calibration") or {}),
            borderline=dict(data.get("borderline") or {}),
            aggregation=str(data.get("aggregation", "")),
            metrics=Metrics(
                **{k: v for k, v in metrics.items() if k in known},
                lodo=Lodo(**{k: v for k, v in lodo.items() if k in _LODO_FIELDS}),
            ),
            training=Training(
                **{k: v for k, v in (data.get("training") or {}).items() if k in _TRAINING_FIELDS}
            ),
            params=dict(data.get("params") or {}),
            files={name: FileRecord(**info) for name, info in dict(data["files"]).items()},
            cycle_model=dict(data.get("cycle_model") or {}),
            parent=str(data.get("parent") or ""),
        )

    def preprocessing_difference(self, settings: Settings) -> str:
        """How the front-end constants the model was trained with differ from ``settings``
        (empty when they agree): a model fed other input than it learned on is wrong."""
        trained = {**PREPROCESSING_BEFORE_IT_WAS_STORED, **self.preprocessing}
        return ", ".join(
            f"{k}: model {trained.get(k)!r} vs config {v!r}"
            for k, v in settings.preprocessing().items()
            if trained.get(k) != v
        )

    def with_lodo(self, lodo: Lodo) -> ModelCard:
        return dataclasses.replace(self, metrics=dataclasses.replace(self.metrics, lodo=lodo))


_OPTIONAL = {"threshold_rule", "calibration", "borderline", "aggregation", "metrics", "training"}
_OPTIONAL |= {"params", "cycle_model", "parent"}
_LODO_FIELDS = {f.name for f in dataclasses.fields(Lodo)}
_TRAINING_FIELDS = {f.name for f in dataclasses.fields(Training)}


def cycle_section(
    model: CycleModel, weight: float, cnn_limits: tuple[float, float] | None
) -> dict[str, Any]:
    """The card's ``cycle_model`` entry: the heart-cycle model, its weight in the blend and
    the range the CNN's logit is held to there (``analyzer.blend_scores``)."""
    section: dict[str, Any] = {**model.as_dict(), "weight": weight}
    if cnn_limits is not None:
        section["cnn_limits"] = list(cnn_limits)
    return section


def load_card(settings: Settings | None = None, path: Path | None = None) -> ModelCard:
    """Read the model card, or explain how to get a valid one."""
    s = settings or get_settings()
    path = path or s.metadata_path
    if not path.exists():
        raise ModelNotFoundError(
            f"model metadata not found at {path}; restore models/ from git or train a model "
            "with `python scripts/gpu_optimized_train.py`"
        )
    try:
        return ModelCard.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ModelNotFoundError(
            f"{path} is not a valid model card ({exc}); restore models/ from git or retrain"
        ) from exc


def write_card(card: ModelCard, path: Path) -> None:
    """Write the card as ``metadata.json`` atomically (a reader never sees half of it)."""
    write_atomically(path.parent, path.name, (json.dumps(card.to_dict(), indent=2) + "\n").encode())
