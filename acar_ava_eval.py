"""
The AVA frame-mAP command line, started without torch / detectron2:

    acar-ava-eval --groundtruth GT.csv --detections DET.csv --labelmap MAP.pbtxt [...]
    python -m acar_ava_eval ...           (the same)

The command is :mod:`acar_d2.evaluation.ava`. ``import acar_d2`` registers every component and
dataset with detectron2 (the detectron2 convention, which everything else relies on), which imports
torch and detectron2: seconds before the first CSV row is read, for code the evaluator does not use.
Python runs a package's ``__init__.py`` before any of its modules, so this launcher, outside the
package, imports the evaluation modules (NumPy and the standard library only) with their parent
packages ``acar_d2``, ``acar_d2.data`` and ``acar_d2.evaluation`` created as bare packages, whose
``__init__.py`` does not run. It does so only when ``acar_d2`` is not imported yet, and removes the
bare packages (and the modules loaded under them) again before it returns, so that a later
``import acar_d2`` in the same process is the complete one.
"""
import importlib
import importlib.machinery
import importlib.util
import os
import sys
from typing import List, Optional

__all__ = ["main"]

_BARE_PACKAGES = ("acar_d2", "acar_d2.data", "acar_d2.evaluation")
_CLI = "acar_d2.evaluation.ava"


def _run_without_package_init(argv: Optional[List[str]]) -> int:
    spec = importlib.util.find_spec("acar_d2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("acar_d2 is not installed (run `make setup` or `pip install -e .`)")
    root = list(spec.submodule_search_locations)[0]
    before = set(sys.modules)
    try:
        for name in _BARE_PACKAGES:
            bare = importlib.machinery.ModuleSpec(name, None, is_package=True)
            bare.submodule_search_locations = [os.path.join(root, *name.split(".")[1:])]
            sys.modules[name] = importlib.util.module_from_spec(bare)
        return importlib.import_module(_CLI).main(argv)
    finally:
        for name in [m for m in sys.modules if m not in before]:
            if name == "acar_d2" or name.startswith("acar_d2."):
                del sys.modules[name]


def main(argv: Optional[List[str]] = None) -> int:
    """Run the CLI (arguments: ``argv`` or ``sys.argv[1:]``); returns the exit status."""
    if "acar_d2" in sys.modules:  # already imported (completely): nothing to save
        return importlib.import_module(_CLI).main(argv)
    return _run_without_package_init(argv)


if __name__ == "__main__":
    sys.exit(main())
