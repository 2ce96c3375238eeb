"""`python -m transduce` runs the command-line interface."""

from transduce._cli.main import main

raise SystemExit(main())
