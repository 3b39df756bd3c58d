"""The compact CNN: log-mel window ``(n_mels, frames, 1)`` → probability of an abnormal heart.

Keras (TensorFlow backend) is imported inside the function so that the apps, which run the
exported LiteRT model, never load TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ModelParams", "build_model"]


@dataclass(frozen=True)
class ModelParams:
    filters: tuple[int, ...] = (16, 24, 32, 48)
    dropout: float = 0.3
    l2: float = 1e-4


def build_model(n_mels: int, n_frames: int, params: ModelParams = ModelParams()) -> Any:
    """Four conv blocks (3×3 conv, batch norm, ReLU, 2×2 max-pool), global average, sigmoid.

    About 25 k parameters (≈ 100 KB as float32 LiteRT) and 11 M multiply-adds per 4 s window.
    """
    import keras
    from keras import layers

    reg = keras.regularizers.l2(params.l2)
    inputs = keras.Input(shape=(n_mels, n_frames, 1), name="log_mel")
    x = inputs
    for i, filters in enumerate(params.filters):
        x = layers.Conv2D(
            filters, 3, padding="same", use_bias=False, kernel_regularizer=reg, name=f"conv{i}"
        )(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        if i < len(params.filters) - 1:
            x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(params.dropout, name="dropout")(x)
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name="abnormal")(x)
    return keras.Model(inputs, outputs, name="auscult_cnn")
