"""The score network as a fused float64 numpy forward: one code path for a bar and for a batch.

LayerNorm's affine parameters are folded into the Linear layer that follows it, and the
noise conditioning of every block (fc1 bias + projected sigma embedding) is precomputed per
noise level, so a forward is: input layer, then per block LN -> matmul + shift -> SiLU ->
matmul + bias -> residual, then LN -> output matmul. It equals the torch module evaluated in
float64 to rounding (~1e-12), and the float32 module to ~1e-6.
"""

from __future__ import annotations

import numpy as np
import torch

from scoremodel.network import NetworkConfig

LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default


class FusedScoreNet:
    """f_theta(x, log sigma) = sigma s_theta(x, sigma) in numpy, from a ScoreNetwork state dict."""

    def __init__(self, state_dict: dict[str, torch.Tensor], config: NetworkConfig) -> None:
        w = {k: v.detach().to(torch.float64).numpy() for k, v in state_dict.items()}
        self.config = config
        self.input_weight = np.ascontiguousarray(w["input.weight"].T)  # (D, H)
        self.input_bias = w["input.bias"]
        self.frequencies = w["embed.frequencies"]
        self.embed_layers = [
            (w["embed.mlp.0.weight"].T, w["embed.mlp.0.bias"]),
            (w["embed.mlp.2.weight"].T, w["embed.mlp.2.bias"]),
        ]
        self.blocks = []
        for b in range(config.n_blocks):
            p = f"blocks.{b}."
            gamma, beta = w[p + "norm.weight"], w[p + "norm.bias"]
            fc1 = w[p + "fc1.weight"].T  # (H, H), x @ fc1
            self.blocks.append(
                (
                    np.ascontiguousarray(gamma[:, None] * fc1),  # LN scale folded into fc1
                    beta @ fc1 + w[p + "fc1.bias"],  # LN shift folded into the fc1 bias
                    w[p + "sigma_proj.weight"].T,
                    np.ascontiguousarray(w[p + "fc2.weight"].T),
                    w[p + "fc2.bias"],
                )
            )
        gamma, beta = w["out_norm.weight"], w["out_norm.bias"]
        out = w["output.weight"].T
        self.output_weight = np.ascontiguousarray(gamma[:, None] * out)
        self.output_bias = beta @ out + w["output.bias"]

    def embedding(self, sigmas: np.ndarray) -> np.ndarray:
        """The sigma embedding e(log sigma), shape (R, H)."""
        angles = np.log(np.asarray(sigmas, np.float64))[:, None] * self.frequencies[None, :]
        e = np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
        (w0, b0), (w1, b1) = self.embed_layers
        return _silu(e @ w0 + b0) @ w1 + b1

    def conditioning(self, sigmas: np.ndarray) -> np.ndarray:
        """Per-block additive shifts for rows at noise levels ``sigmas``: (n_blocks, R, H)."""
        e = self.embedding(sigmas)
        return np.stack([bias + e @ proj for _, bias, proj, _, _ in self.blocks])

    def unit_score(self, x: np.ndarray, shifts: np.ndarray) -> np.ndarray:
        """f_theta for rows ``x`` of shape (R, D) or (N, R, D), noise levels given as shifts.

        ``shifts`` (n_blocks, R, H) comes from :meth:`conditioning` for the R rows' levels
        (R = 1: one level for every row) and is shared by the N leading items.
        """
        rows_shape = x.shape[:-1]
        h = x.reshape(-1, x.shape[-1]) @ self.input_weight + self.input_bias
        hidden = h.shape[-1]
        for (fc1, _, _, fc2, fc2_bias), shift in zip(self.blocks, shifts, strict=True):
            u = (_normalise(h) @ fc1).reshape(*rows_shape, hidden) + shift
            h = h + _silu(u.reshape(-1, hidden)) @ fc2 + fc2_bias
        f = _normalise(h) @ self.output_weight + self.output_bias
        return f.reshape(*rows_shape, f.shape[-1])

    def kernel_weights(self, shifts: np.ndarray) -> tuple:
        """The weights in the compiled kernel's layout (see scoremodel.compiled.unit_score_rows)."""

        def transposed(a: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(np.swapaxes(a, -1, -2))

        return (
            transposed(self.input_weight),
            self.input_bias,
            transposed(np.stack([block[0] for block in self.blocks])),
            np.ascontiguousarray(shifts),
            transposed(np.stack([block[3] for block in self.blocks])),
            np.stack([block[4] for block in self.blocks]),
            transposed(self.output_weight),
            self.output_bias,
        )


def kernel_work(rows: int, state_dim: int, config: NetworkConfig) -> tuple:
    """Preallocated (z, rows, h, normed, u, out) arrays for the compiled per-bar kernels."""
    return (
        np.zeros(state_dim),
        np.zeros((rows, config.dim)),
        np.zeros((rows, config.hidden)),
        np.zeros((rows, config.hidden)),
        np.zeros((rows, config.hidden)),
        np.zeros((rows, config.dim)),
    )


def _normalise(h: np.ndarray) -> np.ndarray:
    """(h - mean) / sqrt(var + eps) over the last axis (LayerNorm without its affine part)."""
    centred = h - h.mean(axis=-1, keepdims=True)
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(variance + LAYER_NORM_EPS)


def _silu(u: np.ndarray) -> np.ndarray:
    """u sigmoid(u), written with tanh so that it never overflows."""
    return 0.5 * u * (1.0 + np.tanh(0.5 * u))
