"""`python -m clarena` is the same as the `clarena` command."""

from clarena.cli import main

raise SystemExit(main())
