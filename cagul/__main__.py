from cagul.cli import main

raise SystemExit(main())
