"""`python -m app.cli`: the `queuepulse` command."""

import sys

from app.cli import main

sys.exit(main())
