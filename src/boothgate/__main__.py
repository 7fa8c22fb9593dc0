from boothgate.cli import main

raise SystemExit(main())
