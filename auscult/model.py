"""The compact CNN: log-mel window ``(n_mels, frames, 1)`` → probability of an abnormal heart.

Keras (TensorFlow backend) is imported inside the function so that the apps, which run the
exported LiteRT model, never load TensorFlow.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

__all__ = ["ModelParams", "build_model", "custom_objects"]


@dataclass(frozen=True)
class ModelParams:
    filters: tuple[int, ...] = (16, 24, 32, 48)
    dropout: float = 0.3
    l2: float = 1e-4
    #: Conv blocks followed by relaxed instance frequency-wise normalisation (0: none).
    rfn_blocks: int = 0
    #: Share of plain layer normalisation in it; the rest normalises each mel band on its own.
    rfn_relax: float = 0.5


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
        if i < params.rfn_blocks:
            x = _relaxed_freq_norm()(params.rfn_relax, name=f"rfn{i}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(params.dropout, name="dropout")(x)
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name="abnormal")(x)
    return keras.Model(inputs, outputs, name="auscult_cnn")


def custom_objects() -> dict[str, Any]:
    """The project's own layers, for ``keras.models.load_model`` (the one way they are found)."""
    return {"RelaxedFreqNorm": _relaxed_freq_norm()}


@functools.cache
def _relaxed_freq_norm() -> type:
    """Relaxed instance frequency-wise normalisation (Kim et al., Interspeech 2022).

    ``relax`` × layer norm + (1 − relax) × each mel band normalised over time and channels,
    per recording window and without trained parameters: a device's colouring is a level per
    band, and this takes it out of the early feature maps while keeping some of the bands'
    relative levels. Input and output ``(batch, bands, frames, channels)``.
    """
    import keras
    from keras import ops

    class RelaxedFreqNorm(keras.layers.Layer):
        def __init__(self, relax: float = 0.5, epsilon: float = 1e-5, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.relax = relax
            self.epsilon = epsilon

        def call(self, x: Any) -> Any:
            band_mean, band_var = ops.moments(x, axes=(2, 3), keepdims=True)
            layer_mean = ops.mean(band_mean, axis=1, keepdims=True)
            layer_var = ops.mean(
                band_var + ops.square(band_mean - layer_mean), axis=1, keepdims=True
            )
            by_band = (x - band_mean) * ops.rsqrt(band_var + self.epsilon)
            whole = (x - layer_mean) * ops.rsqrt(layer_var + self.epsilon)
            return self.relax * whole + (1.0 - self.relax) * by_band

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "relax": self.relax, "epsilon": self.epsilon}

    return RelaxedFreqNorm
