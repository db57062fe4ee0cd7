"""Z-score normalisation fitted on the training split only, clipped to +-clip."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_CLIP = 5.0


@dataclass(frozen=True)
class Normaliser:
    """``z = clip((x - mean) / std, -clip, clip)``; statistics come from training data only."""

    mean: np.ndarray
    std: np.ndarray
    clip: float = DEFAULT_CLIP

    @classmethod
    def fit(cls, train: np.ndarray, clip: float = DEFAULT_CLIP) -> Normaliser:
        """Fit on the training rows; a constant column gets std 1 (it then maps to 0)."""
        train = np.asarray(train, dtype=np.float64)
        if train.ndim != 2 or len(train) < 2:
            raise ValueError(f"need a 2-D array with at least 2 rows, got shape {train.shape}")
        if not np.isfinite(train).all():
            raise ValueError("training features contain NaN or inf; validate the bars first")
        std = train.std(axis=0, ddof=1)
        return cls(mean=train.mean(axis=0), std=np.where(std > 0.0, std, 1.0), clip=clip)

    def transform(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
        return np.clip(z, -self.clip, self.clip)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, dtype=np.float64) * self.std + self.mean

    def transform_columns(self, x: np.ndarray, columns: slice) -> np.ndarray:
        """:meth:`transform` for data holding only ``columns`` of the fitted ones."""
        z = (np.asarray(x, dtype=np.float64) - self.mean[columns]) / self.std[columns]
        return np.clip(z, -self.clip, self.clip)

    def inverse_column(self, z: np.ndarray, column: int) -> np.ndarray:
        """:meth:`inverse` of values of one column."""
        return np.asarray(z, dtype=np.float64) * self.std[column] + self.mean[column]

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "clip": self.clip}

    @classmethod
    def from_dict(cls, data: dict) -> Normaliser:
        return cls(
            mean=np.asarray(data["mean"], dtype=np.float64),
            std=np.asarray(data["std"], dtype=np.float64),
            clip=float(data["clip"]),
        )
