"""`python -m sentinel` runs the command line."""

from sentinel.cli import main

raise SystemExit(main())
