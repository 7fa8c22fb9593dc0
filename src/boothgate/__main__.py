from boothgate.cli.main import main

raise SystemExit(main())
