"""Models: SlowFast backbone, action ROI heads (ACAR, HR2O, baselines), ACARNet meta-architecture,
and the relation maps recorded from an ACAR model (``relation_maps.py``)."""
from . import backbone, roi_heads, meta_arch  # noqa: F401  (importing registers the components)
from .relation_maps import RelationMap, RelationRecorder

__all__ = ["RelationMap", "RelationRecorder"]
