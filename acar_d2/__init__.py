"""
acar_d2: ACAR-Net (Actor-Context-Actor Relation Network) as a detectron2 extension.

``import acar_d2`` registers every component (backbone, ROI heads, meta-architecture, datasets);
``acar_d2.add_acar_config(cfg)`` extends a detectron2 ``get_cfg()``.
"""
try:
    import detectron2  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        "acar_d2 needs detectron2, which is not installed in this environment. Run `make setup` "
        "(installs the `sal-detectron2` wheel, i.e. upstream detectron2 a59f0563, with PyPA "
        "`installer`) or `make setup D2_SOURCE=/path/to/detectron2` to build upstream detectron2 "
        "from a source checkout. See docs/INSTALL.md."
    ) from e

import warnings as _warnings

# fvcore's focal-loss module (imported by detectron2) calls `torch.jit.script` at import time, which
# recent torch answers with a FutureWarning on every start. Only that message, only while acar_d2
# is being imported: the filter is removed again, so the user's own torch.jit.script calls still warn.
_warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated",
                         category=FutureWarning)
_JIT_FILTER = _warnings.filters[0]
try:
    from .config import add_acar_config
    from . import modeling, data, evaluation  # noqa: F401  (registers components and datasets)
    from .checkpoint import ACARCheckpointer  # noqa: F401
    from . import model_zoo  # noqa: F401  (registers the acar_d2:// weight URLs with PathManager)
finally:
    if _JIT_FILTER in _warnings.filters:
        _warnings.filters.remove(_JIT_FILTER)
        getattr(_warnings, "_filters_mutated", lambda: None)()

__all__ = ["add_acar_config"]
__version__ = "0.1.0"
