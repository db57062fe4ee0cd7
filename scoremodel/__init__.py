"""Denoising score matching for market states built from OHLCV bars (no Nautilus imports)."""

__version__ = "0.1.0"
