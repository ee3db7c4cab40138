"""``python -m ava_eval``: the evaluator command line (``ava_eval/cli.py``), also installed as the
console command ``acar-ava-eval``."""
import sys

from .cli import main

sys.exit(main())
