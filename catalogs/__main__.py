"""Entry point of ``python -m catalogs``."""

from catalogs.cli import main

raise SystemExit(main())
