"""Models: SlowFast backbone, action ROI heads (ACAR, HR2O, baselines), ACARNet meta-architecture."""
from . import backbone, roi_heads, meta_arch  # noqa: F401  (importing registers the components)
