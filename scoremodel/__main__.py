from scoremodel.cli import main

raise SystemExit(main())
