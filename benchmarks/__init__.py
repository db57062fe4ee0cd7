"""Speed and memory benchmarks of the per-bar path (``python -m benchmarks``)."""
