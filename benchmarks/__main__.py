"""``python -m benchmarks``: the per-bar benchmark (benchmarks/run.py); ``--ray``: the Ray
scale-out benchmark instead (benchmarks/ray_scaling.py, its own options after the flag)."""

import sys

if "--ray" in sys.argv[1:]:
    from benchmarks.ray_scaling import main

    raise SystemExit(main([arg for arg in sys.argv[1:] if arg != "--ray"]))

from benchmarks.run import main

raise SystemExit(main())
