"""``python -m segment_braze``: the ``segment-braze`` command."""

from __future__ import annotations

import sys

from segment_braze._replay.cli import main

if __name__ == "__main__":
    sys.exit(main())
