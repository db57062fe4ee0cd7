"""``python -m benchmarks``: the per-bar benchmark (benchmarks/run.py), then NautilusTrader 1.231
against 2.0 (benchmarks/engines.py; ``--no-engines`` skips it), both into docs/benchmarks.json;
``--ray``: the Ray scale-out benchmark instead (benchmarks/ray_scaling.py, its own options after
the flag)."""

import sys

if "--ray" in sys.argv[1:]:
    from benchmarks.ray_scaling import main

    raise SystemExit(main([arg for arg in sys.argv[1:] if arg != "--ray"]))

from benchmarks.run import main

raise SystemExit(main())
