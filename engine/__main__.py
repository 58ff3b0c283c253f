"""``python -m engine`` runs the command-line interface."""

from engine.cli import main

raise SystemExit(main())
