"""Denoising score matching for market states built from OHLCV bars (no Nautilus imports).

The score network exists in three implementations of the same float64 maths:

- :class:`scoremodel.network.ScoreNetwork`: torch, for training; the reference;
- :class:`scoremodel.batch_forward.FusedScoreNet`: numpy/BLAS, LayerNorm folded into the next
  layer, for batches (evaluation, calibration);
- :mod:`scoremodel.compiled`: numba kernels for the few rows of one bar (the strategy's path).

Invariant: all three agree to 1e-10 in float64 (float32 torch to 1e-5). Enforced by
``tests/test_checkpoint.py::test_batch_forward_equals_the_torch_reference`` (numpy vs torch),
``tests/test_checkpoint.py::test_compiled_per_bar_path_equals_the_batch_forward`` (compiled vs
numpy, signal, confidence and density to 1e-9), and ``python -m benchmarks``, which checks the
compiled path against torch on every benchmark state.
"""

__version__ = "0.1.0"
