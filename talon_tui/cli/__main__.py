"""`python -m talon_tui.cli`: the same entry point as the `talon` script."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
