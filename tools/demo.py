#!/usr/bin/env python
"""The demo command, kept here for existing command lines: it is ``demo/demo.py`` (see there)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.demo import *  # noqa: F401, F403, E402  (the command's functions, for callers and tests)
from demo.demo import main  # noqa: E402

if __name__ == "__main__":
    from acar_d2.engine.cli import run_cli

    run_cli(main, prog="tools/demo.py")
